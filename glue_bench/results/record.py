"""`metrics.json`: the result of one finished job, as a documented dataclass (docs/results.md).

The training recipe builds it from what it measured; `JobDir.write_metrics` writes it last (its valid presence is
what "done" means); readers get the plain dict back through `JobDir.metrics()`, which checks the version and
the required keys."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from glue_bench.results import schemas

REQUIRED_KEYS = ("schema_version", "job_id", "task", "method", "dev", "task_score", "predictions")


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsRecord:
    """One finished job's `metrics.json`."""

    job_id: str
    """The job id (`JobSpec.job_id`)."""
    task: str
    """The GLUE task."""
    method: str
    """The method family."""
    bottleneck: int | None
    """The adapter bottleneck size (None for methods without one)."""
    dev: dict[str, dict[str, float]]
    """Dev metrics of the best dev weights, per dev split (MNLI: matched and mismatched)."""
    task_score: float
    """The task's score (the mean of its metrics, over splits for MNLI) of `dev`, as a fraction."""
    best_epoch: int | None
    """The epoch (from 0) of the best dev evaluation."""
    best_step: int | None
    """The optimizer step of the best dev evaluation."""
    global_steps: int
    """Optimizer steps taken."""
    parameters: dict[str, Any]
    """Trainable, total, base-model and head parameter counts, and the trainable share of the base model."""
    train_examples: int
    """Training rows used (after `max_train_samples`)."""
    eval_examples: dict[str, int]
    """Dev rows used, per dev split."""
    train_label_distribution: dict[str, Any]
    """Label counts and names of the training rows (STS-B: mean and std of the scores)."""
    prediction_files: dict[str, dict[str, Any]]
    """Per prediction file: rows, bytes and sha256 as written (what "complete" means)."""
    distributed: dict[str, Any]
    """World size, rows per rank, micro batch, accumulation, ZeRO stage, precision, device, per-rank digests."""
    frozen_parameters_sha256: str
    """Digest of every frozen parameter after training (equal to the one at start, or the job fails)."""
    cache: dict[str, int]
    """Tokenisation cache hits and misses of this job."""
    provenance: dict[str, Any]
    """Data source and files, model identity, library versions, git commit, host."""
    wall_seconds: float
    """Seconds from the start of this process to the end of the job."""
    spec: dict[str, Any]
    """The job spec as run (`JobSpec.to_dict()`)."""
    pruned: dict[str, Any] | None = None
    """Where ASHA stopped the job (`run --prune asha`): rung, epoch, score and the scores it met; None: it ran
    out. A pruned job is finished with its best weights so far, predicts dev only, and is kept out of selection."""
    schema_version: int = field(default=schemas.METRICS)
    """`glue_bench.results.schemas.METRICS`."""

    @property
    def predictions(self) -> dict[str, int]:
        """Rows per prediction file (kept in the file for readers of schema 1 written before `prediction_files`)."""
        return {split: f["rows"] for split, f in self.prediction_files.items()}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "predictions": self.predictions}


def is_current(metrics: Any) -> bool:
    """Whether a parsed `metrics.json` has this schema version and the keys every reader needs."""
    return isinstance(metrics, dict) and metrics.get("schema_version") == schemas.METRICS \
        and all(key in metrics for key in REQUIRED_KEYS)
