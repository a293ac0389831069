"""GLUE metrics from scikit-learn and scipy, and the task score (no torch here)."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from glue_bench.tasks import Task

METRIC_FUNCTIONS = {
    "accuracy": lambda y, p: accuracy_score(y, p),
    "f1": lambda y, p: f1_score(y, p),
    "matthews_correlation": lambda y, p: matthews_corrcoef(y, p),
    "pearson": lambda y, p: pearsonr(y, p).statistic,
    "spearman": lambda y, p: spearmanr(y, p).statistic,
}


def compute_metrics(task: Task, split: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metrics on one dev split, e.g. `{"f1": 0.88, "accuracy": 0.84}`."""
    out = {}
    for metric_split, name in task.metrics:
        if metric_split == split:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constant predictions: reported as 0 below
                value = float(METRIC_FUNCTIONS[name](labels, predictions))
            out[name] = 0.0 if math.isnan(value) else value  # constant predictions: correlation undefined
    return out


def task_score(task: Task, dev_metrics: dict[str, dict[str, float]]) -> float:
    """The GLUE task score: the mean of the task's score metrics (MNLI: mean of matched and mismatched)."""
    return float(np.mean([dev_metrics[split][name] for split, name in task.score]))


HALF_SEED = 20_190_601
"""Seed of the fixed split of a dev set into halves (the same for every job, model and seed)."""


def dev_half_a(rows: int) -> np.ndarray:
    """Which of a dev split's `rows` (in idx order) are in half a, the choosing half of the `held-out` protocol
    (half b is the reporting half): a fixed random half, ceil(rows / 2) rows."""
    mask = np.zeros(rows, dtype=bool)
    mask[np.random.default_rng(HALF_SEED).permutation(rows)[: (rows + 1) // 2]] = True
    return mask


def half_metrics(task: Task, split: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
    """The task's metrics of one dev split on each half: {"a": {...}, "b": {...}}."""
    a = dev_half_a(len(labels))
    return {"a": compute_metrics(task, split, predictions[a], labels[a]),
            "b": compute_metrics(task, split, predictions[~a], labels[~a])}
