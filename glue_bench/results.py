"""A job's results folder: its files, their schemas (docs/results.md), atomic writes and "done".

`is_done` is the one definition of a finished job; executors, status, report and submit all use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from glue_bench.tasks import TASKS

SCHEMA_VERSION = 1
REQUIRED_METRICS_KEYS = ("schema_version", "job_id", "task", "method", "dev", "task_score", "predictions")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def prediction_rows(path: Path) -> int | None:
    """Data rows of a predictions file (header excluded), or None if it is missing or has no header."""
    try:
        with Path(path).open() as f:
            if not f.readline().startswith("idx\tprediction"):
                return None
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


def load_metrics(result_dir: Path) -> dict | None:
    """metrics.json if it exists and has the current schema, else None."""
    metrics = read_json(Path(result_dir) / "metrics.json")
    if not isinstance(metrics, dict) or metrics.get("schema_version") != SCHEMA_VERSION:
        return None
    if any(key not in metrics for key in REQUIRED_METRICS_KEYS):
        return None
    return metrics


def expected_predictions(metrics: dict) -> tuple[str, ...]:
    """The prediction files a finished job must have: every dev split, and the test splits if asked."""
    task = TASKS.get(metrics.get("task"))
    if task is None:
        return ("?",)
    spec = metrics.get("spec") or {}
    return task.dev_splits + (task.test_splits if spec.get("predict_test", True) else ())


def is_done(result_dir: Path) -> bool:
    """A job is done when metrics.json is valid and every prediction file it lists is complete."""
    metrics = load_metrics(result_dir)
    if metrics is None:
        return False
    predictions = metrics["predictions"]
    if not isinstance(predictions, dict) or not set(expected_predictions(metrics)) <= set(predictions):
        return False
    return all(prediction_rows(Path(result_dir) / "predictions" / f"{split}.tsv") == rows
               for split, rows in predictions.items())
