"""Predictions of a whole split, sharded over ranks and gathered in idx order, and their TSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glue_bench.results.job_folder import write_prediction_file
from glue_bench.tasks import Task
from glue_bench.train.data import Encoded, Padding, eval_batches
from glue_bench.train.runtime import to_device


def predict(model, encoded: Encoded, task: Task, run, collator: Padding,
            batch_size: int) -> tuple[np.ndarray, dict]:
    """Predictions for a whole split, sharded over ranks, gathered in idx order with no duplicates.

    `run` needs `world`, `rank`, `device` and `gather`; one process passes `SingleProcess`.
    """
    model.eval()
    idx, preds = [], []
    rows_per_rank = 0
    with torch.no_grad():
        for rows in eval_batches(encoded.lengths, run.world, run.rank, batch_size):
            batch = collator(encoded, rows)
            batch.pop("labels")
            logits = model(**to_device(batch, run.device)).logits.float()
            preds.append(logits[:, 0] if task.is_regression else logits.argmax(-1))  # on the device: no sync
            idx.append(encoded.idx[rows])
            rows_per_rank += len(rows)
    local = (np.concatenate(idx) if idx else np.zeros(0, np.int64),
             torch.cat(preds).cpu().numpy() if preds else np.zeros(0))
    parts = run.gather(local)
    all_idx = np.concatenate([p[0] for p in parts])
    all_pred = np.concatenate([p[1] for p in parts])
    order = np.argsort(all_idx, kind="stable")
    all_idx, all_pred = all_idx[order], all_pred[order]
    keep = np.concatenate([[True], all_idx[1:] != all_idx[:-1]]) if len(all_idx) else np.zeros(0, bool)
    all_idx, all_pred = all_idx[keep], all_pred[keep]
    if len(all_idx) != len(encoded):
        raise RuntimeError(f"gathered {len(all_idx)} predictions for {len(encoded)} examples")
    model.train()
    return all_pred, {"rows_per_rank": [p[0].size for p in parts]}


def labels_by_idx(encoded: Encoded) -> np.ndarray:
    return encoded.labels[np.argsort(encoded.idx, kind="stable")]


def write_predictions(path: Path, task: Task, encoded: Encoded, preds: np.ndarray, with_labels: bool) -> dict:
    """`idx<TAB>prediction[<TAB>label]` sorted by idx; label ids, or floats for STS-B. Returns what "done"
    checks later: {"rows", "bytes", "sha256"}."""
    order = np.argsort(encoded.idx, kind="stable")
    fmt = (lambda v: f"{float(v):.6f}") if task.is_regression else (lambda v: str(int(v)))
    lines = [f"{int(i)}\t{fmt(pred)}" + (f"\t{fmt(label)}" if with_labels else "")
             for i, pred, label in zip(encoded.idx[order], preds, encoded.labels[order], strict=True)]
    return write_prediction_file(path, "idx\tprediction\tlabel" if with_labels else "idx\tprediction", lines)
