"""BitFit (Ben Zaken et al. 2022): every bias of the encoder and the task head train, nothing else.

"Every bias": the attention's query, key, value and output projections, the feed-forward projections, every
LayerNorm's beta (the embeddings' included) and the pooler's.
"""

from __future__ import annotations

import itertools

from glue_bench.train.methods.common import extra_parameters, head_parameters, train_only


def bias_parameters(model):
    for name, p in model.base_model.named_parameters():
        if name.endswith(".bias"):
            yield p


def prepare(model, spec) -> None:
    train_only(model, itertools.chain(bias_parameters(model), head_parameters(model), extra_parameters(model, spec)))
