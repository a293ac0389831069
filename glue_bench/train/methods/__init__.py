"""Fine-tuning methods. They differ in one place: how the model is changed and which parameters train.

Each method module has `prepare(model, spec) -> None`: it edits the model in place (adds adapters, injects
peft layers) and sets `requires_grad`. `REGISTRY` names them explicitly; `apply_method` runs one and
returns the parameter counts every job records. The families' parameters are declared, without torch, in
`glue_bench.method_config`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from glue_bench.spec import JobSpec
from glue_bench.train.methods import bitfit, full, houlsby, ia3, layernorm_head, lora, pfeiffer
from glue_bench.train.methods.common import check_architecture

REGISTRY: dict[str, Callable] = {
    "full": full.prepare,
    "houlsby": houlsby.prepare,
    "pfeiffer": pfeiffer.prepare,
    "lora": lora.prepare,
    "bitfit": bitfit.prepare,
    "ia3": ia3.prepare,
    "layernorm_head": layernorm_head.prepare,
}


@dataclass(frozen=True, slots=True)
class ParameterCounts:
    """Trainable and total parameters after the method, the base encoder's size before it, and the task
    head's (everything outside the base encoder before the method)."""

    trainable: int
    total: int
    base_model: int
    head: int = 0

    @property
    def trainable_percent(self) -> float:
        """Trainable parameters as a percentage of the base (pretrained) model."""
        return 100.0 * self.trainable / self.base_model

    def to_dict(self) -> dict:
        return {"trainable": self.trainable, "total": self.total, "base_model": self.base_model,
                "head": self.head, "trainable_percent": self.trainable_percent}


def apply_method(model, spec: JobSpec) -> ParameterCounts:
    """Turn a freshly loaded sequence-classification model into `spec.method`'s trainable model."""
    check_architecture(model)
    base = sum(p.numel() for p in model.base_model.parameters())
    head = sum(p.numel() for p in model.parameters()) - base
    REGISTRY[spec.method](model, spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return ParameterCounts(trainable=trainable, total=total, base_model=base, head=head)
