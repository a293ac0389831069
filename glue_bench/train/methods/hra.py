"""HRA (Yuan et al. 2024) through peft: each targeted weight is multiplied by a chain of `rank` Householder
reflections, whose vectors train (`HRAConfig(r=rank)`; peft initialises them in pairs so the chain starts as
the identity, which needs an even rank).

Trained: the reflection vectors, and the head.
"""

from __future__ import annotations

import itertools

from glue_bench.train.methods.common import extra_parameters, head_parameters, train_only
from glue_bench.train.methods.peft_path import inject
from glue_bench.train.methods.targets import target_names


def peft_config(model, spec):
    from peft import HRAConfig

    return HRAConfig(r=spec.rank, target_modules=target_names(model, "hra", spec.target_modules))


def prepare(model, spec) -> None:
    added = inject(model, spec, peft_config(model, spec))
    train_only(model, itertools.chain(added, head_parameters(model), extra_parameters(model, spec)))
