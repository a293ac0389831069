"""Fine-tuning methods. They differ in one place: how the model is changed and which parameters train.

Each method module has `prepare(model, spec) -> None`: it edits the model in place (adds adapters) and sets
`requires_grad`. `apply_method` runs it and returns the parameter counts every job records.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from glue_bench.methods.common import check_architecture
from glue_bench.spec import JobSpec


@dataclass(frozen=True, slots=True)
class ParameterCounts:
    """Trainable and total parameters after the method, and the base encoder's size before it."""

    trainable: int
    total: int
    base_model: int

    @property
    def trainable_percent(self) -> float:
        """Trainable parameters as a percentage of the base (pretrained) model."""
        return 100.0 * self.trainable / self.base_model

    def to_dict(self) -> dict:
        return {"trainable": self.trainable, "total": self.total, "base_model": self.base_model,
                "trainable_percent": self.trainable_percent}


def apply_method(model, spec: JobSpec) -> ParameterCounts:
    """Turn a freshly loaded sequence-classification model into `spec.method`'s trainable model."""
    check_architecture(model)
    base = sum(p.numel() for p in model.base_model.parameters())
    importlib.import_module(f"glue_bench.methods.{spec.method}").prepare(model, spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return ParameterCounts(trainable=trainable, total=total, base_model=base)
