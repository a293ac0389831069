"""Several jobs per GPU: the slots, the environment each job starts with, and a job that runs out of GPU memory
beside others running again alone. No GPU is needed: the job processes are a stand-in (tests/fake_job.py) that
records its environment; the executor, its claims and its scheduling are the real ones."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import glue_bench

from glue_bench.errors import GlueBenchError
from glue_bench.plan.manifest import plan_sweep
from glue_bench.plan.sweep_file import load_sweep, parse_sweep
from glue_bench.run import local
from glue_bench.run.options import RunOptions

FAKE = Path(__file__).with_name("fake_job.py")


def planned(root: Path, model: Path, data: Path, **changes) -> Path:
    sweep = {"name": "shared", "model": str(model), "data": str(data), "tasks": ["rte", "mrpc", "stsb"],
             "methods": {"full": {"learning_rate": 1e-4}, "houlsby": {"bottleneck": 4, "learning_rate": 1e-3}},
             "epochs": 1, "max_train_samples": 64, "predict_test": False, "gpus_per_job": 1,
             "wandb": {"mode": "disabled"}, **changes}
    root.mkdir(parents=True, exist_ok=True)
    (root / "s.yaml").write_text(yaml.safe_dump(sweep))
    return plan_sweep(load_sweep(root / "s.yaml"), root / "jobs", root / "results").jobs_dir


def test_slots_share_each_gpu_round_robin():
    slots = local.make_slots([0, 1], gpus_per_job=1, cpu_slots=None, procs_per_job=1, jobs_per_gpu=2)
    assert [(s.name, s.gpus, s.shared) for s in slots] == [
        ("gpu0/0", (0,), True), ("gpu1/0", (1,), True), ("gpu0/1", (0,), True), ("gpu1/1", (1,), True)]
    assert [s.name for s in local.make_slots([0, 1], 1, None, 1)] == ["gpu0", "gpu1"]  # one per GPU: as before
    env = local.job_environment(slots[2], {"token": "t"}, 30, port=29123, world=1)
    assert (env["CUDA_VISIBLE_DEVICES"], env["MASTER_PORT"], env["RANK"], env["WORLD_SIZE"]) == ("0", "29123", "0",
                                                                                                  "1")


def test_jobs_per_gpu_key_is_validated(tmp_path):
    base = {"name": "s", "model": "bert-base-uncased", "methods": ["full"]}
    assert parse_sweep({**base, "jobs_per_gpu": 4}).jobs_per_gpu == 4
    assert parse_sweep(base).jobs_per_gpu == 1
    with pytest.raises(GlueBenchError, match="sweep key jobs_per_gpu: bad value 0"):
        parse_sweep({**base, "jobs_per_gpu": 0})


def run_fake(monkeypatch, tmp_path, jobs_dir: Path, oom_job: str | None, **options):
    starts = tmp_path / "starts.jsonl"
    monkeypatch.setenv("FAKE_STARTS", str(starts))
    if oom_job:
        monkeypatch.setenv("FAKE_OOM_JOB", oom_job)
    monkeypatch.setattr(local, "job_command",
                        lambda spec_path, out, world, port=None: [sys.executable, str(FAKE), str(spec_path), str(out)])
    ex = local.build_executor(jobs_dir, RunOptions(gpus=(0, 1), **options))
    outcome = ex.run(poll_s=0.05)
    events = [json.loads(x) for x in (jobs_dir / "events.jsonl").read_text().splitlines()]
    return ex, outcome, events, [json.loads(x) for x in starts.read_text().splitlines()]


def test_four_slots_two_per_gpu_distinct_ports(monkeypatch, tmp_path, tiny_bert, real_glue):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue)
    ex, outcome, events, starts = run_fake(monkeypatch, tmp_path, jobs_dir, None, jobs_per_gpu=2)
    assert len(ex.slots) == 4 and sorted(s.gpus for s in ex.slots) == [(0,), (0,), (1,), (1,)]
    assert outcome.exit_code == 0 and len(outcome.done) == 6
    first = starts[:4]  # the first four start together, one on each slot
    assert sorted(s["CUDA_VISIBLE_DEVICES"] for s in first) == ["0", "0", "1", "1"]
    assert len({s["MASTER_PORT"] for s in first}) == 4
    assert all((s["RANK"], s["WORLD_SIZE"], s["MASTER_ADDR"]) == ("0", "1", "127.0.0.1") for s in starts)
    slots = {e["slot"] for e in events if e["event"] == "start"}
    assert slots == {"gpu0/0", "gpu1/0", "gpu0/1", "gpu1/1"}


def test_out_of_memory_beside_others_runs_again_alone(monkeypatch, tmp_path, tiny_bert, real_glue):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue)
    largest = local.build_executor(jobs_dir, RunOptions(gpus=(0, 1), jobs_per_gpu=2)).order[0]
    ex, outcome, events, starts = run_fake(monkeypatch, tmp_path, jobs_dir, largest, jobs_per_gpu=2, retries=0)
    assert outcome.exit_code == 0 and len(outcome.done) == 6  # never fails the sweep, retries 0 or not
    mine = [e for e in events if e["job"] == largest]
    assert [e["event"] for e in mine] == ["start", "oom", "start", "done"]
    alone = mine[2]
    assert alone.get("alone") is True
    gpu = alone["slot"].split("/")[0]
    during = [e for e in events if e["event"] == "start" and e["job"] != largest
              and alone["time"] <= e["time"] <= mine[3]["time"]]
    assert not [e for e in during if e["slot"].split("/")[0] == gpu]  # nobody joined it on its GPU
    finished_before = {e["job"] for e in events if e["event"] == "done" and e["time"] <= alone["time"]}
    running_then = {e["job"] for e in events if e["event"] == "start" and e["time"] < alone["time"]
                    and e["slot"].split("/")[0] == gpu} - finished_before - {largest}
    assert not running_then  # and it started only once its GPU had no other job


def test_run_dry_run_with_jobs_per_gpu(tmp_path, tiny_bert, real_glue):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue, jobs_per_gpu=2)
    proc = glue_bench("run", str(jobs_dir), "--gpus", "0,1", "--dry-run", cwd=tmp_path)
    assert "on 4 slot(s) (gpu0/0, gpu1/0, gpu0/1, gpu1/1)" in proc.stdout
    proc = glue_bench("run", str(jobs_dir), "--gpus", "0,1", "--jobs-per-gpu", "1", "--dry-run", cwd=tmp_path)
    assert "on 2 slot(s) (gpu0, gpu1)" in proc.stdout
    bad = glue_bench("run", str(jobs_dir), "--gpus", "0", "--jobs-per-gpu", "0", "--dry-run", cwd=tmp_path,
                     check=False)
    assert bad.returncode == 1 and "--jobs-per-gpu 0: must be at least 1" in bad.stderr


def test_out_of_memory_with_the_gpu_to_itself_is_an_ordinary_failure(monkeypatch, tmp_path, tiny_bert, real_glue):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue)
    largest = local.build_executor(jobs_dir, RunOptions(gpus=(0, 1), jobs_per_gpu=2)).order[0]
    ex, outcome, events, _ = run_fake(monkeypatch, tmp_path, jobs_dir, largest, jobs_per_gpu=2, retries=0,
                                      only=[largest])
    assert ex.slots[0].shared  # a shared slot, but no other job ran on its GPU: nothing beside it to blame
    assert [e["event"] for e in events] == ["start", "failed"] and outcome.exit_code == 1


def test_an_earlier_attempts_out_of_memory_record_is_not_this_ones(monkeypatch, tmp_path, tiny_bert, real_glue):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue)
    ex = local.build_executor(jobs_dir, RunOptions(gpus=(0, 1), jobs_per_gpu=2))
    largest = ex.order[0]
    ex.job_dir(largest).mkdir(parents=True, exist_ok=True)
    (ex.job_dir(largest) / "error.json").write_text(json.dumps(
        {"type": "OutOfMemoryError", "message": "CUDA out of memory", "attempt": 1, "time": 1.0}))
    monkeypatch.setattr(local, "job_command", lambda spec_path, out, world, port=None: [
        sys.executable, "-c", "import time, sys; time.sleep(0.3); sys.exit(3)"])  # fails, and not for memory
    outcome = ex.run(poll_s=0.05)
    events = [json.loads(x) for x in (jobs_dir / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e["job"] == largest] == ["start", "failed"]
    assert "exited with 3" in outcome.failed[largest]
