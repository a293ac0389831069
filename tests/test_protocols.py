"""The papers' protocols (report/protocols.py), the tested differences (report/significance.py) and what the report
writes of them, on hand-built job folders whose answers are worked out in the comments."""

import json

import numpy as np
import pytest
from job_folders import rte, write_curve_job
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.report import protocols
from glue_bench.report.aggregate import build_rows, select
from glue_bench.report.budgets import BudgetColumn, Choice, shared_tasks
from glue_bench.report.collect import collect
from glue_bench.report.replay import replay
from glue_bench.report.significance import comparisons
from glue_bench.report.tuning import curves, device_hours
from glue_bench.results.metrics import dev_half_a


def test_best_last_and_held_out_score_different_evaluations(tmp_path):
    # curve 0.6, 0.8, 0.7; halves (a, b): (0.7, 0.5), (0.6, 0.9), (0.65, 0.75)
    write_curve_job(tmp_path, rte(), [0.6, 0.8, 0.7], halves=[(0.7, 0.5), (0.6, 0.9), (0.65, 0.75)])
    [record] = collect(tmp_path)
    best = protocols.score(record, "best-epoch")
    assert best.score == 0.8 and best.chosen_step is None  # the best evaluation: metrics.json's
    last = protocols.score(record, "last-epoch")
    assert (last.task_score, last.score, last.chosen_step, last.dev) == (0.7, 0.7, 30, {"dev": {"accuracy": 0.7}})
    held = protocols.score(record, "held-out")  # half a chooses evaluation 1 (0.7); half b reports it (0.5)
    assert (held.task_score, held.score, held.chosen_step, held.example_half) == (0.7, 0.5, 10, "b")
    assert held.dev == {"dev": {"accuracy": 0.5}}


def test_held_out_training_rows_choose_and_the_whole_dev_set_reports(tmp_path):
    path = write_curve_job(tmp_path, rte(heldout_train_rows=100), [0.6, 0.8], halves=[(0.6, 0.6), (0.8, 0.8)])
    lines = (path / "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    records[0]["eval/heldout/task_score"], records[1]["eval/heldout/task_score"] = 0.9, 0.5
    (path / "history.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    held = protocols.score(collect(tmp_path)[0], "held-out")
    assert (held.task_score, held.score, held.chosen_step, held.example_half) == (0.9, 0.6, 10, None)


def test_jobs_without_what_a_protocol_needs_are_left_out_and_named(tmp_path):
    write_curve_job(tmp_path, rte(seed=1), [0.6, 0.8])  # no halves recorded
    records, left_out = protocols.apply(collect(tmp_path), "held-out")
    assert left_out == [rte(seed=1).job_id]
    assert protocols.apply(collect(tmp_path), "last-epoch")[1] == []


def test_median_aggregate_and_bootstrap_interval(tmp_path):
    for seed, score in ((1, 0.5), (2, 0.6), (3, 0.9)):
        write_curve_job(tmp_path, rte(seed=seed), [score])
    records = collect(tmp_path)
    [mean_row, _] = build_rows(records, "mean")
    [median_row, _] = build_rows(records, "median")
    assert mean_row.task_scores["rte"] == pytest.approx(200 / 3)  # (50 + 60 + 90) / 3
    assert median_row.task_scores["rte"] == pytest.approx(60) and median_row.cells["RTE"].shown == pytest.approx(60)
    low, high = mean_row.intervals["rte"]
    assert 50 <= low < 200 / 3 < high <= 90  # a percentile interval of the mean lies within the seeds' range


def labels_and_predictions(n: int, wrong_every: int) -> tuple[list[int], list[int]]:
    labels = [i % 2 for i in range(n)]
    return labels, [1 - y if wrong_every and i % wrong_every == 0 else y for i, y in enumerate(labels)]


def test_a_real_difference_holds_and_none_does_not(tmp_path):
    # 200 dev rows, 3 seeds. full is right on every row; houlsby m=8 wrong on every other row (accuracy 0.5):
    # a 50-point difference holds at 0.01. houlsby m=16 is right on all but every 50th row (0.98): 2 points.
    labels, right = labels_and_predictions(200, 0)
    _, half = labels_and_predictions(200, 2)
    _, almost = labels_and_predictions(200, 50)
    for seed in (1, 2, 3):
        write_curve_job(tmp_path, rte(seed=seed), [1.0], predictions=[right], labels=labels)
        write_curve_job(tmp_path, rte(seed=seed, method="houlsby", bottleneck=8, learning_rate=1e-3), [0.5],
                        predictions=[half], labels=labels)
        write_curve_job(tmp_path, rte(seed=seed, method="houlsby", bottleneck=16, learning_rate=1e-3), [0.98],
                        predictions=[almost], labels=labels)
    rows = build_rows(collect(tmp_path))
    found = {(c.row, c.other): c for c in comparisons(rows, resamples=500)}
    bad = found[("houlsby m=8", "full")]
    assert bad.delta == pytest.approx(-50) and bad.verdict == "holds at 0.01" and bad.seeds == 3
    assert bad.smallest_seed_p == 0.25 and "cannot tell with 3" in bad.seeds_verdict
    # 4 rows of 200 differ, the same rows for every seed: the bootstrap keeps them in or out together; with 4
    # discordant rows out of 200 a 2-point gap is not distinguishable at 0.01 after Holm over the comparisons
    close = found[("houlsby m=16", "full")]
    assert close.delta == pytest.approx(-2) and close.verdict in ("does not hold", "holds at 0.05")
    assert all(c.p_examples_holm >= c.p_examples for c in found.values())


def test_held_out_tests_the_reporting_half_only(tmp_path):
    # wrong exactly on the rows of half a: on half b (what held-out reports) the two are identical
    labels = [i % 2 for i in range(40)]
    a_rows = dev_half_a(40)
    wrong_on_a = [1 - y if a else y for y, a in zip(labels, a_rows, strict=True)]
    halves = [(0.5, 1.0)]
    for seed in (1, 2):
        write_curve_job(tmp_path, rte(seed=seed), [1.0], predictions=[labels], labels=labels, halves=[(1.0, 1.0)])
        write_curve_job(tmp_path, rte(seed=seed, method="bitfit", learning_rate=1e-3), [0.75],
                        predictions=[wrong_on_a], labels=labels, halves=halves)
    records, _ = protocols.apply(collect(tmp_path), "held-out")
    [c] = comparisons(build_rows(records), resamples=200)
    assert c.delta == pytest.approx(0) and c.p_examples == pytest.approx(1)


def test_tuning_curves_and_device_hours(tmp_path):
    # three learning rates of one seed: 0.5, 0.7, 0.9 -> expected best of 1, 2, 3 settings: 70, 71/0.9..., see
    # stats.expected_max: n=1: mean 70; n=3: 0.5/27 + 0.7*7/27 + 0.9*19/27 = 83.33
    for lr, score in ((1e-5, 0.5), (2e-5, 0.7), (3e-5, 0.9)):
        write_curve_job(tmp_path, rte(learning_rate=lr), [score], epoch_seconds=1800)
    records = collect(tmp_path)
    [curve] = curves(records)
    assert curve.expected[0] == pytest.approx(70) and curve.expected[2] == pytest.approx(2250 / 27)
    assert device_hours(records) == {"full": {"rte": pytest.approx(1.5), "all": pytest.approx(1.5)}}


def test_equal_budget_mean_counts_only_tasks_every_column_has():
    a = BudgetColumn(1.0, {"rte": Choice("rte", "x", 60.0, 0.5)})
    b = BudgetColumn(100.0, {"rte": Choice("rte", "x", 70.0, 50), "mrpc": Choice("mrpc", "y", 80.0, 50)})
    empty = BudgetColumn(0.1)
    assert shared_tasks([empty, a, b]) == ["rte"]
    assert b.mean_over(["rte"]) == 70.0 and b.mean == 75.0 and a.mean_over(["mrpc"]) is None


def test_report_cli_protocol_replay_and_reference_under_its_protocol(tmp_path):
    results = tmp_path / "results" / "s"
    labels, right = labels_and_predictions(20, 0)
    for seed in (1, 2, 3):
        for lr, curve in ((1e-4, [0.6, 0.95, 0.65]), (1e-3, [0.4, 0.5, 0.9])):
            write_curve_job(results, rte(seed=seed, learning_rate=lr, epochs=3), curve,
                            predictions=[right] * 3, labels=labels, start=seed, halves=[(s, s) for s in curve])
    out = CliRunner().invoke(app, ["report", str(results), "--protocol", "last-epoch", "--aggregate", "median",
                                   "--replay-pruning", "--reference", "lora-2021-roberta-base"],
                             env={"COLUMNS": "120"})
    assert out.exit_code == 0, out.output
    data = json.loads((results / "report" / "report.json").read_text())
    assert data["schema_version"] == 3 and data["protocol"]["name"] == "last-epoch"
    assert data["protocol"]["aggregate"] == "median"
    # best-epoch would choose lr 1e-4 (0.95 at epoch 2); the last evaluations choose lr 1e-3 (0.9 against 0.65)
    assert data["rows"][0]["task_scores"]["rte"] == pytest.approx(90.0)
    assert data["reference"]["protocol"] == {"protocol": "best-epoch", "aggregate": "median", "seeds": 5,
                                             "note": None}
    pruning = json.loads((results / "report" / "pruning.json").read_text())
    assert pruning["reduction"] == 3 and pruning["groups"][0]["jobs"] == 6
    md = (results / "report" / "report.md").read_text()
    assert "[copied]" in md and "Protocol: last-epoch" in md and "## Pruning replay" in md
    assert (results / "report" / "expected_validation.png").stat().st_size > 0
    bad = CliRunner().invoke(app, ["report", str(results), "--protocol", "best"])
    assert bad.exit_code == 1 and "--protocol 'best'" in bad.output


def test_report_json_of_schema_2_reads_as_3(tmp_path):
    from glue_bench.report.publish import read_report

    old = {"schema_version": 2, "sweep": "s", "columns": ["RTE"],
           "rows": [{"label": "full", "cells": {"RTE": {"mean": 60.0, "std": 1.0, "n": 2}}, "task_scores": {}}]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    data = read_report(path)
    assert data["schema_version"] == 3 and data["protocol"] == {"name": "best-epoch", "aggregate": "mean",
                                                                "description": protocols.DESCRIPTIONS["best-epoch"],
                                                                "left_out": []}
    assert data["rows"][0]["cells"]["RTE"]["value"] == 60.0 and data["comparisons"] == []
    path.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(Exception, match="schema 1"):
        read_report(path)
    assert np.isclose(dev_half_a(11).sum(), 6)


def test_a_test_that_cannot_be_made_says_why(tmp_path):
    # last-epoch chooses evaluation 2 of [0.9, 0.6]; these jobs kept no predictions of it (only the best's file)
    for seed in (1, 2):
        write_curve_job(tmp_path, rte(seed=seed), [0.9, 0.6])
        write_curve_job(tmp_path, rte(seed=seed, method="bitfit", learning_rate=1e-3), [0.8, 0.7])
    records, _ = protocols.apply(collect(tmp_path), "last-epoch")
    [c] = comparisons(build_rows(records), resamples=100)
    assert c.verdict == "too little to tell" and "kept no predictions of its chosen evaluation" in c.note


def test_a_p_at_the_bootstrap_floor_is_refined_by_the_normal_law():
    from glue_bench.report.stats import paired_example_test

    labels = np.arange(400) % 2
    test = paired_example_test(labels[None], 1 - labels[None], labels, "accuracy", resamples=100)
    assert test.p == pytest.approx(1 / 101)  # the floor: every resample is as far from 0 as can be
    assert test.p_fine < 1e-6 and test.p_fine == test.p_normal  # 100 points apart, tiny standard error


def test_a_setting_that_lost_a_seed_to_asha_goes_after_one_that_kept_all(tmp_path):
    # lr 1e-4: seeds 0.9 and (pruned) 0.2: its surviving mean 0.9 beats lr 1e-3's 0.7 and 0.7, but it lost a seed
    write_curve_job(tmp_path, rte(seed=1, learning_rate=1e-4), [0.9])
    write_curve_job(tmp_path, rte(seed=2, learning_rate=1e-4), [0.2], pruned={"rung": 0, "epoch": 1})
    for seed in (1, 2):
        write_curve_job(tmp_path, rte(seed=seed, learning_rate=1e-3), [0.7])
    [selection] = select(collect(tmp_path))
    assert selection.learning_rate == 1e-3 and selection.complete


def test_replay_under_held_out_ranks_by_the_choosing_half(tmp_path):
    # On the whole dev set the second job is behind (0.5 < 0.6) and would be stopped; on half a it is ahead
    write_curve_job(tmp_path, rte(learning_rate=1e-4, epochs=3), [0.6, 0.6, 0.6], start=0,
                    halves=[(0.55, 0.65)] * 3)
    write_curve_job(tmp_path, rte(learning_rate=1e-3, epochs=3), [0.5, 0.5, 0.5], start=1,
                    halves=[(0.6, 0.4)] * 3)
    [whole] = replay(collect(tmp_path), reduction=3)
    assert len(whole.pruned) == 1
    records, _ = protocols.apply(collect(tmp_path), "held-out")
    [held] = replay(records, reduction=3, protocol="held-out")
    assert held.pruned == []


def test_a_shorter_jobs_final_score_competes_at_a_longer_jobs_rung(tmp_path):
    # reduction 3, rungs after 1 and 3 epochs. A 3-epoch job ends at epoch 3 with 0.8 (its last: never stopped);
    # a 9-epoch job reaches epoch 3 later with 0.7: k = max(1, 2 // 3) = 1, behind 0.8: stopped there, as live
    write_curve_job(tmp_path, rte(learning_rate=1e-4, epochs=3), [0.5, 0.6, 0.8], start=0)
    write_curve_job(tmp_path, rte(learning_rate=1e-4, epochs=9), [0.6, 0.65, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
                    start=5)
    stopped = {g.config: g.pruned for g in replay(collect(tmp_path), reduction=3)}
    [only] = stopped["full"]
    assert only.epoch == 3 and only.job_id == rte(learning_rate=1e-4, epochs=9).job_id
