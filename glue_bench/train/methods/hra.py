"""HRA (Yuan et al. 2024) through peft: each targeted weight is multiplied by a chain of `rank` Householder
reflections, whose vectors train (`HRAConfig(r=rank)`; peft initialises them in pairs so the chain starts as
the identity, which needs an even rank).

Trained: the reflection vectors, and the head.
"""

from __future__ import annotations

from glue_bench.train.methods.peft_path import prepare_with
from glue_bench.train.methods.targets import target_names


def peft_config(model, spec):
    from peft import HRAConfig

    return HRAConfig(r=spec.rank, target_modules=target_names(model, "hra", spec.target_modules))


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec))
