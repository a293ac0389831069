"""PiSSA (Meng et al. 2024) through peft: LoRA whose A and B start from the top-r singular vectors and values of
each targeted weight, the frozen base keeping the residual W - B A (`LoraConfig(init_lora_weights="pissa")`, a
full SVD, so every seed starts from the same adapters).

The base weights are rewritten once, at the start: the frozen-weight checks of a PiSSA job hold the rewritten
weights. Its peft folder is converted back to a LoRA update of the original weights (rank 2r, as peft documents),
so it loads onto the original base model. On torch's meta device (pricing, counting) no SVD runs: the adapters
have the same shapes either way.
"""

from __future__ import annotations

from glue_bench.train.methods.lora import prepare_lora
from glue_bench.train.methods.peft_path import on_meta


def prepare(model, spec) -> None:
    prepare_lora(model, spec, init_lora_weights=True if on_meta(model) else "pissa")
