"""GLUE metrics (glue_bench/results/metrics.py) against values computed by hand."""

import numpy as np
import pytest

from glue_bench.results.metrics import compute_metrics, task_score
from glue_bench.tasks import TASKS


def test_binary_metrics_by_hand():
    labels = np.array([1, 1, 0, 0, 1])
    preds = np.array([1, 0, 0, 1, 1])
    # tp=2 fp=1 fn=1 tn=1: acc 3/5, F1 = 2*2/(2*2+1+1) = 2/3, MCC = (2*1-1*1)/sqrt(3*3*2*2) = 1/6
    m = compute_metrics(TASKS["mrpc"], "dev", preds, labels)
    assert m == pytest.approx({"f1": 2 / 3, "accuracy": 0.6})
    assert compute_metrics(TASKS["cola"], "dev", preds, labels) == pytest.approx({"matthews_correlation": 1 / 6})
    assert task_score(TASKS["mrpc"], {"dev": m}) == pytest.approx((2 / 3 + 0.6) / 2)


def test_regression_metrics_by_hand():
    labels = np.array([0.0, 1.0, 2.0, 3.0])
    preds = np.array([0.0, 2.0, 4.0, 6.0])  # perfectly linear
    m = compute_metrics(TASKS["stsb"], "dev", preds, labels)
    assert m == pytest.approx({"pearson": 1.0, "spearman": 1.0})
    m = compute_metrics(TASKS["stsb"], "dev", np.array([3.0, 2.0, 1.0, 0.0]), labels)
    assert m == pytest.approx({"pearson": -1.0, "spearman": -1.0})


def test_mnli_score_is_the_mean_of_matched_and_mismatched():
    dev = {"dev_matched": {"accuracy": 0.8}, "dev_mismatched": {"accuracy": 0.7}}
    assert task_score(TASKS["mnli"], dev) == pytest.approx(0.75)
    assert compute_metrics(TASKS["mnli"], "dev_mismatched", np.array([0, 1, 2]), np.array([0, 1, 1])) == \
        pytest.approx({"accuracy": 2 / 3})
