"""LN-tuning (Zhao et al. 2024) through peft: a trained copy of every LayerNorm of the encoder (the embeddings'
included), the originals kept frozen (`LNTuningConfig`); the head trains too.

It trains the same parameters as `layernorm_head`, the Houlsby recipe without adapters, but through peft, with
peft's folder; the two are a check on each other.
"""

from __future__ import annotations

from torch import nn

from glue_bench.train.methods.peft_path import prepare_with


def peft_config(model, spec):
    from peft import LNTuningConfig

    prefix = model.base_model_prefix + "."
    names = sorted(name for name, module in model.named_modules()
                   if isinstance(module, nn.LayerNorm) and name.startswith(prefix))
    return LNTuningConfig(target_modules=names)


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec))
