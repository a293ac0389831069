"""VeRA (Kopiczko et al. 2024) through peft: one pair of frozen random matrices A (r x d) and B (d x r), shared by
every targeted projection, and per projection two trained vectors that scale them: W x + diag(b) B diag(d) A x.

The shared matrices come from a fixed PRNG key (peft's `projection_prng_key`, 0), so every job and every reload
draws the same ones; they are saved in the peft folder (`save_projection`). `rank` is their rank (the paper's 1024
on RoBERTa-base, 256 on -large). Trained: the vectors, and the head (its own learning rate in the paper's recipe:
`head_learning_rate`).
"""

from __future__ import annotations

from glue_bench.train.methods.peft_path import prepare_with
from glue_bench.train.methods.targets import target_names


def peft_config(model, spec):
    from peft import VeraConfig

    return VeraConfig(r=spec.rank, target_modules=target_names(model, "vera", spec.target_modules),
                      save_projection=True)


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec))
