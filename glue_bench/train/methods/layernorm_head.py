"""LayerNorms + head only: the Houlsby recipe without adapters, the baseline that shows what adapters add."""

from __future__ import annotations

import itertools

from glue_bench.train.methods.common import extra_parameters, head_parameters, layernorm_parameters, train_only


def prepare(model, spec) -> None:
    train_only(model, itertools.chain(layernorm_parameters(model), head_parameters(model),
                                      extra_parameters(model, spec)))
