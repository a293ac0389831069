"""LoRA (Hu et al. 2021) through `peft`: W x + (alpha / r) B A x on the chosen projections.

peft injects the low-rank matrices into the model in place; glue-bench's own loop trains them. A starts
from peft's Kaiming init and B from zero, so the model starts exactly as the pretrained one. Trained: A and
B of every targeted projection (default query and value, as in the paper) and the task head (RoBERTa and
ELECTRA: the whole classification head), plus the pooler with `train_pooler`. With `loraplus_ratio`, LoRA+: B
learns faster than A.
"""

from __future__ import annotations

from glue_bench.method_config import lora_alpha
from glue_bench.train.methods.peft_path import MethodHooks, prepare_with
from glue_bench.train.methods.targets import target_names


def peft_config(model, spec, **flags):
    """The peft `LoraConfig` of a spec, with the full names of the projections it targets (`flags`: the LoRA
    variants' switches, DoRA's `use_dora`, PiSSA's `init_lora_weights`)."""
    from peft import LoraConfig

    return LoraConfig(r=spec.rank, lora_alpha=lora_alpha(spec.rank, spec.alpha), lora_dropout=spec.lora_dropout,
                      target_modules=target_names(model, spec.method, spec.target_modules), bias="none", **flags)


class LoraPlus(MethodHooks):
    """LoRA+ (Hayou et al. 2024): the B matrices learn at `loraplus_ratio` x the learning rate."""

    def __init__(self, tuner, spec):
        self.ratio = spec.loraplus_ratio

    def learning_rate_scale(self, name: str) -> float:
        return self.ratio if ".lora_B." in name else 1.0


def hooks_of(spec):
    return LoraPlus if spec.loraplus_ratio else None


def prepare_lora(model, spec, **flags) -> None:
    """LoRA and its variants: inject, then train the adapters, the head and the spec's extras."""
    prepare_with(model, spec, peft_config(model, spec, **flags), hooks_of(spec))


def prepare(model, spec) -> None:
    prepare_lora(model, spec)
