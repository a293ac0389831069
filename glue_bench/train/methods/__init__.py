"""Fine-tuning methods. They differ in one place: how the model is changed and which parameters train.

Each method module is named after its family and has `prepare(model, spec) -> None`: it edits the model in place
(adds adapters, injects peft layers) and sets `requires_grad`; what it needs from the training loop it leaves on
the model as its `MethodHooks` (`method_hooks(model)`; AdaLoRA's budget, LoRA+'s learning rates). The families,
their names and parameters are declared once, without torch, in `glue_bench.method_config.FAMILIES`; `REGISTRY`
maps each to its module's `prepare` (a family without a module fails at import, and a test checks both ways);
`apply_method` runs one and returns the parameter counts every job records.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from glue_bench.method_config import METHODS
from glue_bench.spec import JobSpec
from glue_bench.train.methods.common import check_architecture
from glue_bench.train.methods.peft_path import MethodHooks, method_hooks

__all__ = ["REGISTRY", "MethodHooks", "ParameterCounts", "apply_method", "method_hooks"]

REGISTRY: dict[str, Callable] = {name: importlib.import_module(f"{__name__}.{name}").prepare for name in METHODS}


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
