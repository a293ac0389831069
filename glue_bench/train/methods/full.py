"""Full fine-tuning: every parameter trains."""

from __future__ import annotations


def prepare(model, spec) -> None:
    for p in model.parameters():
        p.requires_grad_(True)
