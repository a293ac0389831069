"""BitFit (Ben Zaken et al. 2022): every bias of the encoder and the task head train, nothing else.

"Every bias": the attention's query, key, value and output projections, the feed-forward projections, every
LayerNorm's beta (the embeddings' included) and the pooler's. An encoder without biases (ModernBERT as
published) is refused.
"""

from __future__ import annotations

import itertools

from glue_bench.errors import GlueBenchError
from glue_bench.train.methods.common import architecture_name, extra_parameters, head_parameters, train_only


def bias_parameters(model):
    for name, p in model.base_model.named_parameters():
        if name.endswith(".bias"):
            yield p


def prepare(model, spec) -> None:
    biases = list(bias_parameters(model))
    if not biases:
        raise GlueBenchError(f"bitfit: {architecture_name(model)} has no bias in its encoder (ModernBERT's "
                             "attention_bias, mlp_bias and norm_bias are false): nothing but the head would train")
    train_only(model, itertools.chain(biases, head_parameters(model), extra_parameters(model, spec)))
