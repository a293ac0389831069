"""DoRA (Liu et al. 2024) through peft: LoRA whose update of each weight is split into a magnitude, trained per
output row, and a direction, updated by the low-rank product (`LoraConfig(use_dora=True)`).

Trained: A, B and the magnitude vector of every targeted projection, and the head (plus the pooler with
`train_pooler`). It starts as the pretrained model. LoRA+ (`loraplus_ratio`) applies to its B matrices.
"""

from __future__ import annotations

from glue_bench.train.methods.lora import prepare_lora


def prepare(model, spec) -> None:
    prepare_lora(model, spec, use_dora=True)
