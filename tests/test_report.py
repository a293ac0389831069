"""The report (glue_bench/report/collect.py, aggregate.py and `glue-bench report`): job folders read into records,
the best setting chosen per task and configuration, seeds averaged, the GLUE table."""

import shutil

import pytest
from conftest import invoke
from job_folders import rte, write_done_job, write_job
from report_records import budget_records, rec
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.method_config import MethodConfig
from glue_bench.report.aggregate import (
    BEST_M,
    MAJORITY,
    build_rows,
    missing_jobs,
    paper_total,
    report_data,
    select,
)
from glue_bench.report.collect import JobRecord, collect
from glue_bench.results import schemas
from glue_bench.tasks import TASKS


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
    assert data["schema_version"] == schemas.REPORT == 3 and data["columns"][0] == "CoLA"
    assert set(row) >= {"label", "kind", "cells", "task_scores", "glue_score", "paper_total", "trainable",
                        "trainable_percent", "delta_vs_full", "missing_tasks", "selection"}
    assert row["glue_score"] == pytest.approx(76.3889, abs=1e-4)
    assert row["selection"]["rte"]["seeds"] == [1]
    assert TASKS["rte"].display == "RTE"


@pytest.mark.parametrize("change", [{"max_grad_norm": 0.5}, {"data_seed": 3}, {"group_by_length": False},
                                    {"zero_stage": 2}, {"max_eval_samples": 100}])
def test_report_never_merges_two_settings_that_differ_in_an_id_field(tmp_path, change):
    a, b = rte(), rte(**change)
    assert a.job_id != b.job_id and a.seed == b.seed
    write_done_job(tmp_path, a, 0.6)
    write_done_job(tmp_path, b, 0.7)
    selections = select(collect(tmp_path))
    assert len(selections) == 1  # one per (task, configuration): the better setting, alone
    assert [r.seed for r in selections[0].records] == [42]
    assert selections[0].mean_score == pytest.approx(0.7)


def test_seeds_of_one_setting_are_averaged(tmp_path):
    write_done_job(tmp_path, rte(seed=1), 0.6)
    write_done_job(tmp_path, rte(seed=2), 0.8)
    (selection,) = select(collect(tmp_path))
    assert [r.seed for r in selection.records] == [1, 2] and selection.mean_score == pytest.approx(0.7)


def test_a_copy_of_a_job_folder_is_not_a_second_seed(tmp_path):
    folder = write_done_job(tmp_path, rte(), 0.6)
    shutil.copytree(folder, tmp_path / "copy-of-the-job")
    (selection,) = select(collect(tmp_path))
    assert [r.seed for r in selection.records] == [42]


def test_a_corrupt_metrics_json_is_reported_as_corrupt_not_unfinished(tmp_path):
    folder = write_done_job(tmp_path, rte(), 0.6)
    (folder / "metrics.json").write_text("{ not json")
    (record,) = collect(tmp_path)
    assert not record.done and "metrics.json is corrupt" in record.error
    assert missing_jobs([record])["unfinished"] == []


def test_a_job_folder_with_a_corrupt_spec_is_named_by_the_report(tmp_path):
    results = tmp_path / "results" / "s"
    write_done_job(results, rte(), 0.6)
    (results / "broken-job").mkdir()
    (results / "broken-job" / "spec.json").write_text("{")
    result = invoke("report", str(results))
    assert result.exit_code == 0, result.output
    assert "1 unreadable (broken-job: spec.json" in result.output


def test_report_into_an_impossible_folder_is_one_line(tmp_path):
    write_done_job(tmp_path / "results" / "s", rte(), 0.6)
    result = invoke("report", str(tmp_path / "results" / "s"), "--out-dir", "/dev/null/x")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: cannot write the report to /dev/null/x")


def test_best_size_rows_for_every_sized_family():
    records = budget_records() + [
        rec("rte", "lora", score=0.69, trainable=30, base=1000, head=10,
            method_config=MethodConfig("lora", (("rank", 16), ("alpha", 16.0)))),
        rec("rte", "houlsby", m=64, score=0.65, trainable=300, base=1000, head=10,
            method_config=MethodConfig("houlsby", (("bottleneck", 64),))),
    ]
    labels = [r.label for r in build_rows(records)]
    assert labels == ["full", "houlsby m=8", "houlsby m=64", "houlsby (best m per task)", "lora r=8 a=8",
                      "lora r=16 a=16", "lora (best r per task)", "bitfit", "ia3", "majority class"][:len(labels)]
    best = {r.label: r for r in build_rows(records)}["lora (best r per task)"]
    assert best.selections["rte"].config == "lora r=16 a=16" and best.selections["mrpc"].config == "lora r=8 a=8"


def test_report_cli_with_reference_budgets_and_errors(tmp_path):
    results = tmp_path / "results" / "s"
    write_job(results / "rte-a", "rte", 0.6)
    runner = CliRunner()
    out = runner.invoke(app, ["report", str(results), "--reference", "transformers-bert-base-cased",
                              "--budgets", "1,100"], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert "bert-base-cased fine-tuning" in out.output and "65.7" in out.output
    tables = [line for line in out.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(tables) > 20 and max(len(line) for line in tables) <= 80 and "…" not in out.output
    md = (results / "report" / "report.md").read_text()
    assert "## Equal budgets" in md and "## Published numbers" in md and "| Δ |" in md
    bad = runner.invoke(app, ["report", str(results), "--reference", "nope"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "no reference table 'nope'" in bad.output
    bad = runner.invoke(app, ["report", str(results), "--budgets", "1,x"])
    assert bad.exit_code == 1 and "--budgets" in bad.output
    listed = runner.invoke(app, ["references"])
    assert listed.exit_code == 0 and "houlsby-2019" in listed.output and "Hu et al. 2021" in listed.output
