import json

import numpy as np
import pytest

from glue_bench.results.job_folder import atomic_write_json, is_done
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


def _finished(tmp_path, predict_test=True):
    (tmp_path / "predictions").mkdir(parents=True)
    (tmp_path / "predictions" / "dev.tsv").write_text("idx\tprediction\tlabel\n0\t1\t1\n1\t0\t1\n")
    (tmp_path / "predictions" / "test.tsv").write_text("idx\tprediction\n0\t1\n")
    metrics = {"schema_version": 1, "job_id": "x", "task": "rte", "method": "full", "dev": {},
               "task_score": 0.5, "predictions": {"dev": 2, "test": 1}, "spec": {"predict_test": predict_test}}
    atomic_write_json(tmp_path / "metrics.json", metrics)
    return metrics


def test_is_done_requires_valid_metrics_and_complete_predictions(tmp_path):
    assert not is_done(tmp_path)
    metrics = _finished(tmp_path)
    assert is_done(tmp_path)
    (tmp_path / "predictions" / "test.tsv").write_text("idx\tprediction\n")  # truncated
    assert not is_done(tmp_path)
    (tmp_path / "predictions" / "test.tsv").write_text("idx\tprediction\n0\t1\n")
    atomic_write_json(tmp_path / "metrics.json", {**metrics, "schema_version": 99})
    assert not is_done(tmp_path)
    (tmp_path / "metrics.json").write_text('{"schema_version": 1, "job_id"')  # half-written
    assert not is_done(tmp_path)
    atomic_write_json(tmp_path / "metrics.json", {**metrics, "predictions": {"dev": 2}})  # test file not listed
    assert not is_done(tmp_path)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
