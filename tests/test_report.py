from pathlib import Path

import pytest
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.report.aggregate import BEST_M, MAJORITY, build_rows, paper_total, report_data, select
from glue_bench.report.collect import JobRecord
from glue_bench.results.job_folder import atomic_write_json
from glue_bench.tasks import TASKS


def rec(task, method="full", lr=3e-5, seed=1, dev=None, score=None, m=None, epochs=3, path=Path("."),
        trainable=100, base=1000, **kw) -> JobRecord:
    return JobRecord(job_id=f"{task}-{method}-{m}-{lr}-{epochs}-{seed}", path=path, task=task, method=method,
                     bottleneck=m, learning_rate=lr, epochs=epochs, seed=seed, setting="", done=True,
                     dev=dev or {"dev": {"accuracy": score}}, task_score=score, trainable=trainable,
                     base_model=base, **kw)


def test_paper_total_of_the_glue_md_row_is_79_4():
    row = {"CoLA": 55.2, "SST-2": 90.9, "MRPC F1": 88.7, "STS-B S": 82.5, "QQP F1": 71.4, "MNLI-m": 84.1,
           "MNLI-mm": 83.3, "QNLI": 90.6, "RTE": 68.2}
    assert round(paper_total(row), 1) == 79.4
    assert paper_total({k: v for k, v in row.items() if k != "RTE"}) is None


def full_result_set() -> list[JobRecord]:
    return [
        rec("cola", dev={"dev": {"matthews_correlation": 0.50}}, score=0.50),
        rec("sst2", score=0.90),
        rec("mrpc", dev={"dev": {"f1": 0.88, "accuracy": 0.84}}, score=0.86),
        rec("stsb", dev={"dev": {"pearson": 0.88, "spearman": 0.86}}, score=0.87),
        rec("qqp", dev={"dev": {"f1": 0.70, "accuracy": 0.88}}, score=0.79),
        rec("mnli", dev={"dev_matched": {"accuracy": 0.84}, "dev_mismatched": {"accuracy": 0.83}}, score=0.835),
        rec("qnli", score=0.90),
        rec("rte", score=0.66),
        rec("wnli", score=0.56),
    ]


def test_official_glue_score_and_total_of_a_fabricated_full_result_set():
    (row,) = build_rows(full_result_set())
    # task scores 50, 90, 86, 87, 79, 83.5, 90, 66, 56 -> 687.5 / 9
    assert row.glue_score == pytest.approx(687.5 / 9)
    # CoLA 50, SST-2 90, MRPC F1 88, STS-B S 86, QQP F1 70, MNLI 84 / 83, QNLI 90, RTE 66 -> 707 / 9
    assert row.paper_total == pytest.approx(707 / 9)
    assert row.cells["MRPC F1"].mean == pytest.approx(88.0)


def test_selection_takes_the_best_mean_with_ties_to_more_seeds_then_smaller_lr():
    records = [
        *(rec("rte", lr=3e-4, seed=s, score=v) for s, v in zip((1, 2, 3), (0.5, 0.625, 0.75), strict=True)),
        *(rec("rte", lr=3e-5, seed=s, score=v) for s, v in zip((1, 2), (0.5, 0.75), strict=True)),
        *(rec("rte", lr=1e-4, seed=s, score=0.625) for s in (1, 2, 3)),
        rec("rte", lr=3e-3, seed=1, score=0.6),
    ]
    (chosen,) = select(records)
    assert chosen.learning_rate == 1e-4 and [r.seed for r in chosen.records] == [1, 2, 3]
    (row,) = build_rows([r for r in records if r.learning_rate != 1e-4])
    cell = row.cells["RTE"]  # lr 3e-4 wins the tie with lr 3e-5 on seeds: 50, 62.5, 75
    assert (cell.mean, cell.std, cell.n) == (62.5, 12.5, 3)


def test_best_of_several_seeds_and_epochs():
    records = [rec("rte", epochs=3, seed=1, score=0.6), rec("rte", epochs=3, seed=2, score=0.7),
               rec("rte", epochs=20, seed=1, score=0.64), rec("rte", epochs=20, seed=2, score=0.64)]
    (chosen,) = select(records)
    assert chosen.epochs == 3 and chosen.mean_score == pytest.approx(0.65)
    assert chosen.best_seed.seed == 2


def test_best_m_row_and_delta_to_full():
    records = [rec("rte", score=0.60, trainable=1000), rec("mrpc", dev={"dev": {"f1": 0.8, "accuracy": 0.7}},
                                                              score=0.75, trainable=1000),
               rec("rte", "houlsby", m=8, lr=3e-4, score=0.62, trainable=10),
               rec("rte", "houlsby", m=64, lr=3e-4, score=0.62, trainable=60),
               rec("mrpc", "houlsby", m=8, lr=3e-4, dev={"dev": {"f1": 0.7, "accuracy": 0.6}}, score=0.65),
               rec("mrpc", "houlsby", m=64, lr=3e-4, dev={"dev": {"f1": 0.8, "accuracy": 0.8}}, score=0.8)]
    rows = {r.label: r for r in build_rows(records)}
    assert list(rows) == ["full", "houlsby m=8", "houlsby m=64", BEST_M]
    best = rows[BEST_M]
    assert best.selections["rte"].config == "houlsby m=8"  # tie -> the smaller adapter
    assert best.selections["mrpc"].config == "houlsby m=64"
    # (62 - 60 + 80 - 75) / 2 = 3.5 points over full
    assert best.delta_vs_full == pytest.approx(3.5)
    assert rows["houlsby m=8"].trainable_percent["rte"] == pytest.approx(1.0)


def test_majority_baseline_from_train_distribution_and_dev_labels(tmp_path):
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "dev.tsv").write_text("idx\tprediction\tlabel\n0\t0\t1\n1\t1\t1\n2\t0\t0\n")
    record = rec("rte", score=0.5, path=tmp_path, train_label_distribution={"counts": [2, 5]})
    rows = {r.label: r for r in build_rows([record])}
    assert rows[MAJORITY].cells["RTE"].mean == pytest.approx(200 / 3)  # majority class 1: 2 of 3 right


def write_job(folder: Path, task: str, score: float, failed: bool = False, **spec) -> None:
    folder.mkdir(parents=True)
    atomic_write_json(folder / "spec.json", {"task": task, "model": "m", "method": "full", "seed": 1,
                                             "learning_rate": 3e-5, "predict_test": False, **spec})
    if failed:
        atomic_write_json(folder / "error.json", {"type": "RuntimeError", "message": "boom", "attempt": 1})
        return
    (folder / "predictions").mkdir()
    (folder / "predictions" / "dev.tsv").write_text("idx\tprediction\tlabel\n0\t1\t1\n1\t0\t1\n")
    atomic_write_json(folder / "metrics.json", {
        "schema_version": 1, "job_id": folder.name, "task": task, "method": "full",
        "dev": {"dev": {"accuracy": score}}, "task_score": score, "predictions": {"dev": 2},
        "parameters": {"trainable": 10, "base_model": 10}, "train_label_distribution": {"counts": [1, 3]},
        "spec": {"predict_test": False}})


def test_report_cli_on_an_incomplete_sweep_with_a_failed_job(tmp_path):
    results = tmp_path / "results" / "s"
    write_job(results / "rte-a", "rte", 0.6)
    write_job(results / "rte-b", "rte", 0.7, seed=2)
    write_job(results / "sst2-a", "sst2", 0.0, failed=True)
    (results / "garbage").mkdir()
    out = CliRunner().invoke(app, ["report", str(results)], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "1 failed (sst2-a: RuntimeError: boom)" in out.output
    assert "no results for CoLA, SST-2, MRPC" in out.output
    md = (results / "report" / "report.md").read_text()
    assert "| full | - | - | - | - | - | - | - | 65.0±7.1 (n=2) |" in md
    for name in ("report.json", "report.csv", "report.tex", "score_vs_parameters.png"):
        assert (results / "report" / name).stat().st_size > 0


def test_report_json_schema_fields():
    rows = build_rows(full_result_set())
    data = report_data("s", rows, full_result_set())
    row = data["rows"][0]
    assert data["schema_version"] == 2 and data["columns"][0] == "CoLA"
    assert set(row) >= {"label", "kind", "cells", "task_scores", "glue_score", "paper_total", "trainable",
                        "trainable_percent", "delta_vs_full", "missing_tasks", "selection"}
    assert row["glue_score"] == pytest.approx(76.3889, abs=1e-4)
    assert row["selection"]["rte"]["seeds"] == [1]
    assert TASKS["rte"].display == "RTE"
