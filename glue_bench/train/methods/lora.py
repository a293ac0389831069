"""LoRA (Hu et al. 2021) through `peft`: W x + (alpha / r) B A x on the chosen projections.

peft injects the low-rank matrices into the model in place; glue-bench's own loop trains them. A starts
from peft's Kaiming init and B from zero, so the model starts exactly as the pretrained one. Trained: A and
B of every targeted projection (default query and value, as in the paper) and the task head (RoBERTa and
ELECTRA: the whole classification head), plus the pooler with `train_pooler`.
"""

from __future__ import annotations

import itertools

from glue_bench.method_config import lora_alpha
from glue_bench.train.methods.common import extra_parameters, head_parameters, train_only
from glue_bench.train.methods.targets import inject, resolve_targets


def peft_config(model, spec):
    """The peft `LoraConfig` of a spec, with the full names of the projections it targets."""
    from peft import LoraConfig

    names = sorted(itertools.chain.from_iterable(resolve_targets(model, "lora", spec.target_modules).values()))
    return LoraConfig(r=spec.rank, lora_alpha=lora_alpha(spec.rank, spec.alpha),
                      lora_dropout=spec.lora_dropout, target_modules=names, bias="none")


def prepare(model, spec) -> None:
    added = inject(model, spec, peft_config(model, spec))
    train_only(model, itertools.chain(added, head_parameters(model), extra_parameters(model, spec)))
