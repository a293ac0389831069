"""(IA)³ (Liu et al. 2022) through `peft`: learned vectors that rescale keys, values and the feed-forward
activations.

The paper's targets: the attention keys and values (their outputs are scaled) and the feed-forward block's
intermediate activations (the input of its second projection, `output.dense`, is scaled). peft's own BERT
mapping matches the attention output projection too (its `output.dense` suffix), and it has no mapping
for ELECTRA; glue-bench always passes the paper's modules by full name, the same for BERT, RoBERTa and
ELECTRA (DeBERTa: its `key_proj`, `value_proj` and `output.dense`; ModernBERT computes keys with queries and
values in one projection, so its default scales the fused `Wqkv` output and the input of `mlp.Wo`). The vectors
start at one, so the model starts as the pretrained one. Trained: the vectors and the
task head (plus the pooler with `train_pooler`).
"""

from __future__ import annotations

import itertools

from glue_bench.method_config import FEEDFORWARD_TARGETS
from glue_bench.train.methods.common import encoder_of
from glue_bench.train.methods.peft_path import prepare_with
from glue_bench.train.methods.targets import layer_linears, resolve_targets


def peft_config(model, spec):
    """The peft `IA3Config` of a spec: target modules by full name, the feed-forward ones among them."""
    from peft import IA3Config

    resolved = resolve_targets(model, "ia3", spec.target_modules)
    names = sorted(itertools.chain.from_iterable(resolved.values()))
    relative = dict(layer_linears(model))
    encoder = encoder_of(model)
    feedforward = [n for n in names if relative[n] in {encoder.name_of(t) for t in FEEDFORWARD_TARGETS}]
    return IA3Config(target_modules=names, feedforward_modules=feedforward)


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec))
