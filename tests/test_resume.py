"""Exact results after a crash: a job SIGKILLed at a named point (the GLUE_BENCH_CRASH_AT hook that only tests set:
between the `best` and `last` checkpoints, right after `last`, while a checkpoint is written, during `finish`,
right after a resume), then run again, ends with the same metrics.json results, the same prediction files and the
same weights as an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import glue_bench
from train_runs import train_args

from glue_bench.train.stop import CRASH_ENVIRONMENT

JOB = ("--task", "rte", "--method", "houlsby", "--bottleneck", "8", "--learning-rate", "1e-3", "--batch-size", "16",
       "--epochs", "3", "--max-train-samples", "128", "--max-eval-samples", "48", "--no-predict-test",
       "--log-every-steps", "1")
RESULT_KEYS = ("job_id", "dev", "task_score", "best_epoch", "best_step", "global_steps", "parameters",
               "prediction_files", "frozen_parameters_sha256")


def run(model: Path, data: Path, out: Path, crash_at: str | None = None):
    return glue_bench(*train_args(model, data, out, *JOB), check=crash_at is None,
                      env={CRASH_ENVIRONMENT: crash_at} if crash_at else None)


def result(out: Path) -> dict:
    from safetensors.numpy import load_file

    metrics = json.loads((out / "metrics.json").read_text())
    files = {p.name: p.read_bytes() for p in sorted((out / "predictions").iterdir())}
    weights = {name: array.tobytes() for name, array in load_file(str(out / "adapter.safetensors")).items()}
    # every step's loss and learning rate, and every evaluation (a step run twice keeps its last record): the
    # dev metrics of a tiny model saturate, so the training itself is what shows a resume that is not exact
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    steps = {r["step"]: (r["train/loss"], r["train/lr"]) for r in records if "train/loss" in r}
    evals = {r["step"]: r["eval/task_score"] for r in records if "eval/task_score" in r}
    return {**{k: metrics[k] for k in RESULT_KEYS}, "files": files, "weights": weights, "steps": steps,
            "evals": evals}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_bert, real_glue) -> dict:
    out = tmp_path_factory.mktemp("uninterrupted") / "job"
    run(tiny_bert, real_glue, out)
    return result(out)


@pytest.mark.parametrize("crash_at", ["between-best-and-last", "after-last", "checkpoint-write", "finish"])
def test_a_crash_at_a_named_point_then_a_rerun_equals_an_uninterrupted_run(crash_at, uninterrupted, tiny_bert,
                                                                          real_glue, tmp_path):
    out = tmp_path / "job"
    crashed = run(tiny_bert, real_glue, out, crash_at)
    assert crashed.returncode == -9, crashed.stderr[-2000:]  # killed at the point, not finished
    assert not (out / "metrics.json").exists()
    run(tiny_bert, real_glue, out)
    assert result(out) == uninterrupted
    assert not (out / "checkpoints").exists()  # nothing half-written left behind


def test_a_crash_right_after_a_resume_then_a_rerun_equals_an_uninterrupted_run(uninterrupted, tiny_bert,
                                                                              real_glue, tmp_path):
    out = tmp_path / "job"
    assert run(tiny_bert, real_glue, out, "after-last").returncode == -9
    assert run(tiny_bert, real_glue, out, "after-resume").returncode == -9
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["event"] for r in history if "event" in r][:1] == ["start"]
    run(tiny_bert, real_glue, out)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "resume" for r in history) == 1  # the killed resume never wrote its record
    assert result(out) == uninterrupted
