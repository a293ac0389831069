"""The asynchronous successive-halving rule (ASHA, Li et al. 2020), declared once: a running job applies it at
each rung (`run --prune asha`) and the report replays it on a finished sweep's curves (`report --replay-pruning`).

The promotion rule is Optuna's `SuccessiveHalvingPruner`'s, word for word: at a rung, a job goes on when its dev
score is at least the k-th best of the scores its group has reached at that rung so far (its own included),
k = max(1, n // reduction); so the first job at a rung always goes on. Pure; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_REDUCTION = 3
DEFAULT_MIN_EPOCHS = 1


def rung_epochs(epochs: int, min_epochs: int = DEFAULT_MIN_EPOCHS, reduction: int = DEFAULT_REDUCTION) -> list[int]:
    """Epochs (counted from 1) after which a job of `epochs` epochs meets a rung: min_epochs x reduction^k, each
    before the last epoch (a job at its last epoch has nothing left to save). `rung_epochs(10, 1, 3)` = [1, 3, 9]."""
    rungs, epoch = [], min_epochs
    while epoch < epochs:
        rungs.append(epoch)
        epoch *= reduction
    return rungs


def promotes(score: float, competing: Sequence[float], reduction: int = DEFAULT_REDUCTION) -> bool:
    """Whether a job with `score` at a rung goes on, given every score reached at that rung so far, its own
    included (higher is better)."""
    ordered = sorted(competing, reverse=True)
    k = max(1, len(ordered) // reduction)
    return score >= ordered[k - 1]
