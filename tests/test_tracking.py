"""Tracking (glue_bench/results/tracking.py): wandb for real, offline, runs read back from their .wandb logs; online
without a network; WANDB_DIR."""

import json
import os
import signal
import time

import pytest
from conftest import glue_bench
from train_runs import SST2, start_job, train_args, wait_for
from typer.testing import CliRunner
from wandb_reader import read_run

from glue_bench.cli import app

OFFLINE = {"WANDB_MODE": "offline"}


def run_dirs(out):
    return sorted((out / "wandb").glob("offline-run-*"))


@pytest.fixture(scope="module")
def offline_job(tmp_path_factory, tiny_bert, real_glue):
    out = tmp_path_factory.mktemp("wandb") / "job"
    glue_bench(*train_args(tiny_bert, real_glue, out, *SST2, "--no-predict-test"), env=OFFLINE)
    return out


def test_job_run_mirrors_the_results_folder(offline_job):
    (run_dir,) = run_dirs(offline_job)
    run = read_run(run_dir)
    spec = json.loads((offline_job / "spec.json").read_text())
    metrics = json.loads((offline_job / "metrics.json").read_text())
    assert run["run"]["id"] == (offline_job / "wandb_run_id").read_text().strip()
    assert run["run"]["name"] == metrics["job_id"] and run["run"]["job_type"] == "sst2"
    assert run["run"]["tags"] == ["houlsby", "sst2", "m=8"]
    assert {k: run["config"][k] for k in spec} == spec  # the spec's fields, plus versions and hardware
    assert run["config"]["versions"]["deepspeed"] and run["config"]["hardware"]["cpus"]
    train_rows = [r for r in run["history"] if "train/loss" in r]
    eval_rows = [r for r in run["history"] if "eval/task_score" in r]
    # log_every_steps 10 and every epoch end (32 steps each)
    assert [r["_step"] for r in train_rows] == [10, 20, 30, 32, 40, 50, 60, 64]
    assert {"train/loss", "train/lr", "train/grad_norm", "train/examples_per_s"} <= set(train_rows[0])
    assert [r["_step"] for r in eval_rows] == [32, 64] and "eval/accuracy" in eval_rows[0]
    summary = run["summary"]
    assert summary["best/dev/accuracy"] == metrics["dev"]["dev"]["accuracy"]
    assert summary["best/task_score"] == metrics["task_score"]
    assert summary["trainable_params"] == metrics["parameters"]["trainable"] == 2594
    assert summary["trainable_percent"] == pytest.approx(metrics["parameters"]["trainable_percent"])
    assert summary["best_epoch"] == metrics["best_epoch"]


def test_resumed_job_reuses_the_run_id(tiny_bert, real_glue, tmp_path):
    out = tmp_path / "job"
    proc = start_job(train_args(tiny_bert, real_glue, out, *SST2, "--no-predict-test"), env=OFFLINE)
    wait_for(lambda: any(True for _ in (out / "checkpoints").glob("last-*")) if (out / "checkpoints").exists()
             else proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 75
    first_id = (out / "wandb_run_id").read_text().strip()
    glue_bench(*train_args(tiny_bert, real_glue, out, *SST2, "--no-predict-test"), env=OFFLINE)
    assert (out / "wandb_run_id").read_text().strip() == first_id
    runs = run_dirs(out)
    assert len(runs) == 2 and {read_run(r)["run"]["id"] for r in runs} == {first_id}
    # --force starts afresh: the old folder (and its run id) moves aside, the new run gets a new id
    glue_bench(*train_args(tiny_bert, real_glue, out, *SST2, "--no-predict-test", "--force", "--epochs", "2"),
               env=OFFLINE)
    assert (out / "wandb_run_id").read_text().strip() != first_id


def test_online_without_network_finishes_with_bounded_wait_and_no_secrets(tiny_bert, real_glue, tmp_path):
    out = tmp_path / "job"
    secret = "0123456789abcdef0123456789abcdef01234567"
    start = time.time()
    proc = glue_bench(*train_args(tiny_bert, real_glue, out, "--task", "rte", "--method", "full", "--epochs", "1",
                                  "--max-train-samples", "32", "--max-eval-samples", "16", "--no-predict-test"),
                      env={"WANDB_MODE": "online", "WANDB_API_KEY": secret, "WANDB_BASE_URL": "http://127.0.0.1:9"})
    elapsed = time.time() - start
    assert (out / "metrics.json").is_file() and proc.returncode == 0
    assert "wandb" in proc.stderr and "the job goes on" in proc.stderr
    assert elapsed < 120, elapsed  # init and finish waits are bounded (20 s each)
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_report_summary_run_holds_the_report_table(offline_job, tmp_path):
    results = tmp_path / "results" / "s"
    results.mkdir(parents=True)
    os.symlink(offline_job, results / offline_job.name)
    env = {**OFFLINE, "COLUMNS": "250"}
    out = CliRunner().invoke(app, ["report", str(results), "--wandb", "offline"], env=env)
    assert out.exit_code == 0, out.output
    (run_dir,) = sorted((results / "wandb").glob("offline-run-*"))
    assert f"(offline, under {results}: wandb sync {results}/wandb/offline-run-*)" in out.output
    run = read_run(run_dir)
    assert run["run"]["group"] == "s" and run["run"]["job_type"] == "report"
    table = run["tables"]["glue_table"]
    md = (results / "report" / "report.md").read_text().splitlines()
    assert md[0].startswith("Protocol: best-epoch")
    md = md[md.index(next(line for line in md if line.startswith("|"))):]
    assert table["columns"] == [c.strip() for c in md[0].strip("|").split("|")]
    assert table["data"][0] == [c.strip() for c in md[2].strip("|").split("|")]
    assert run["tables"]["tuning_cost"]["columns"][:3] == ["task", "configuration", "settings"]
    assert run["tables"]["differences"]["columns"][0] == "task"
    budgets = run["tables"]["budget_table"]  # the equal-budget table, as in report.md
    assert budgets["columns"] == ["task", "≤ 0.1%", "≤ 0.5%", "≤ 1%", "≤ 3%", "≤ 100%"]
    # houlsby m=8 on the tiny BERT: 2,528 parameters besides the head, 0.25% of the base model
    assert budgets["data"][0][:2] == ["SST-2", "-"] and all(c.endswith(" houlsby m=8") for c in budgets["data"][0][2:])
    assert any(k.startswith("plots/") for r in run["history"] for k in r)
    second = CliRunner().invoke(app, ["report", str(results), "--wandb", "offline"], env=env)
    assert second.exit_code == 0 and len(list((results / "wandb").glob("offline-run-*"))) == 2


def test_wandb_dir_is_honoured(tmp_path, monkeypatch):
    from glue_bench.results import tracking

    wandb_dir, results = tmp_path / "x", tmp_path / "results"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    tracker = tracking.start("offline", project="p", entity=None, group=None, job_type="rte", name="n", tags=[],
                             config={}, directory=results)
    try:
        assert isinstance(tracker, tracking.WandbTracker)
    finally:
        tracker.finish()
    assert len(list((wandb_dir / "wandb").glob("offline-run-*"))) == 1
    assert not list(results.rglob("offline-run-*"))


def test_results_folder_is_the_default_wandb_dir(tmp_path, monkeypatch):
    from glue_bench.results import tracking

    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert tracking.wandb_directory(tmp_path) == tmp_path
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "x"))
    assert tracking.wandb_directory(tmp_path) == tmp_path / "x"


def test_the_offline_sync_hint_names_the_sweeps_runs(tmp_path, monkeypatch):
    from glue_bench.results import tracking

    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert tracking.offline_sync_hint(tmp_path) is None
    for job in ("a", "b"):
        (tmp_path / job / "wandb" / "offline-run-20260101_000000-x").mkdir(parents=True)
    assert tracking.offline_sync_hint(tmp_path) == \
        f"wandb: 2 run(s) saved offline; upload them with: wandb sync {tmp_path}/*/wandb/offline-run-*"
