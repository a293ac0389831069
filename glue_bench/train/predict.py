"""Predict a split with a finished job's saved weights (adapter on a fresh base model, or a full model)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from glue_bench.errors import GlueBenchError
from glue_bench.results.job_folder import JobDir
from glue_bench.spec import JobSpec
from glue_bench.tasks import get_task
from glue_bench.train.weights import load_weights

log = logging.getLogger(__name__)


def trained_on(checkpoint: Path, spec: JobSpec) -> str:
    """The data source a job was trained on: its spec's, or for `auto` the folder its metrics.json recorded
    (GLUE_DATA_DIR at training time), so that predicting later does not silently go to the hub."""
    from glue_bench.results.job_folder import load_metrics

    if spec.data != "auto" or os.environ.get("GLUE_DATA_DIR"):
        return spec.data
    recorded = ((load_metrics(checkpoint) or {}).get("provenance") or {}).get("data") or {}
    folder = recorded.get("folder")
    if folder:
        log.info("data: the glue_data folder the job was trained on, %s (--data-dir to choose another)", folder)
    return folder or spec.data


def predict_split(checkpoint: Path, task_name: str, split: str, data: str | None, out: Path | None,
                  cache_dir: Path | None = None) -> tuple[Path, int]:
    """Write predictions for `split` of `task_name` to `out`; returns (path, rows)."""
    from glue_bench.train.data import Padding, TokenCache, resolve_data_source
    from glue_bench.train.prediction import predict, write_predictions
    from glue_bench.train.runtime import SingleProcess

    checkpoint = Path(checkpoint)
    folder = JobDir(checkpoint)
    spec = JobSpec.load(folder.spec_path)
    task = get_task(task_name)
    if task.name != spec.task:
        raise GlueBenchError(f"{checkpoint} was trained on {spec.task}, not {task.name}")
    if split not in task.prediction_splits:
        raise GlueBenchError(f"{task.display} has no split {split!r}; choose {', '.join(task.prediction_splits)}")
    model, tokenizer = load_weights(folder, spec, task)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    source = resolve_data_source(data if data is not None else trained_on(checkpoint, spec))
    encoded = TokenCache(cache_dir).encoded(task, split, source, tokenizer, spec.max_seq_length)
    preds, _ = predict(model, encoded, task, SingleProcess(device), Padding.for_tokenizer(tokenizer), 64)
    out = Path(out) if out else folder.later_prediction_path(split)
    written = write_predictions(out, task, encoded, preds, with_labels=split in task.dev_splits)
    return out, written["rows"]
