"""The local executor (glue_bench/run/local.py) with stand-in jobs (tests/fake_job.py) that record the environment
they were started with: several jobs per GPU, a job that runs out of GPU memory beside others running again
alone, CPU slots when no GPU is visible, and jobs another runner holds. No GPU is needed; the executor, its
claims and its scheduling are the real ones."""

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from conftest import glue_bench
from job_folders import rte

from glue_bench.plan.manifest import plan_sweep
from glue_bench.plan.sweep_file import load_sweep
from glue_bench.results.job_folder import atomic_write_json
from glue_bench.run import local
from glue_bench.run.options import RunOptions
from glue_bench.spec import JobSpec

FAKE = Path(__file__).with_name("fake_job.py")


def planned(root: Path, model: Path, data: Path, **changes) -> Path:
    sweep = {"name": "shared", "model": str(model), "data": str(data), "tasks": ["rte", "mrpc", "stsb"],
             "methods": {"full": {"learning_rate": 1e-4}, "houlsby": {"bottleneck": 4, "learning_rate": 1e-3}},
             "epochs": 1, "max_train_samples": 64, "predict_test": False, "gpus_per_job": 1,
             "wandb": {"mode": "disabled"}, **changes}
    root.mkdir(parents=True, exist_ok=True)
    (root / "s.yaml").write_text(yaml.safe_dump(sweep))
    return plan_sweep(load_sweep(root / "s.yaml"), root / "jobs", root / "results").jobs_dir


@pytest.fixture
def two_gpus(monkeypatch):
    """GPUs 0 and 1 are visible (CUDA_VISIBLE_DEVICES, which the executor's check of --gpus honours); the stand-in
    jobs never touch them."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")


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


@pytest.mark.usefixtures("two_gpus")
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


@pytest.mark.usefixtures("two_gpus")
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


@pytest.mark.usefixtures("two_gpus")
def test_run_dry_run_with_jobs_per_gpu(tmp_path, tiny_bert, real_glue):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue, jobs_per_gpu=2)
    proc = glue_bench("run", str(jobs_dir), "--gpus", "0,1", "--dry-run", cwd=tmp_path)
    assert "on 4 slot(s) (gpu0/0, gpu1/0, gpu0/1, gpu1/1)" in proc.stdout
    proc = glue_bench("run", str(jobs_dir), "--gpus", "0,1", "--jobs-per-gpu", "1", "--dry-run", cwd=tmp_path)
    assert "on 2 slot(s) (gpu0, gpu1)" in proc.stdout
    bad = glue_bench("run", str(jobs_dir), "--gpus", "0", "--jobs-per-gpu", "0", "--dry-run", cwd=tmp_path,
                     check=False)
    assert bad.returncode == 1 and "--jobs-per-gpu 0: must be at least 1" in bad.stderr


@pytest.mark.usefixtures("two_gpus")
def test_out_of_memory_with_the_gpu_to_itself_is_an_ordinary_failure(monkeypatch, tmp_path, tiny_bert, real_glue):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue)
    largest = local.build_executor(jobs_dir, RunOptions(gpus=(0, 1), jobs_per_gpu=2)).order[0]
    ex, outcome, events, _ = run_fake(monkeypatch, tmp_path, jobs_dir, largest, jobs_per_gpu=2, retries=0,
                                      only=[largest])
    assert ex.slots[0].shared  # a shared slot, but no other job ran on its GPU: nothing beside it to blame
    assert [e["event"] for e in events] == ["start", "failed"] and outcome.exit_code == 1


@pytest.mark.usefixtures("two_gpus")
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


def test_a_sweep_without_gpus_per_job_runs_on_cpu_slots_when_no_gpu_is_visible(tiny_bert, real_glue, tmp_path):
    sweep = {"name": "auto", "model": str(tiny_bert), "data": str(real_glue), "tasks": ["rte"],
             "methods": ["full"], "max_train_samples": 16, "predict_test": False}
    (tmp_path / "auto.yaml").write_text(yaml.safe_dump(sweep))
    glue_bench("plan", "auto.yaml", cwd=tmp_path)
    proc = glue_bench("run", "jobs/auto", "--slots", "2", "--dry-run", cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert "gpus_per_job auto: no GPU visible, jobs run on CPU slots" in proc.stdout
    assert "on 2 slot(s) (cpu0, cpu1)" in proc.stdout
    # an explicit value stays binding
    proc = glue_bench("run", "jobs/auto", "--gpus-per-job", "1", "--dry-run", cwd=tmp_path, check=False,
                      env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 1 and "need 1 GPU(s) but 0 are visible" in proc.stderr


def test_a_runner_waiting_on_jobs_another_runner_holds_says_so(tmp_path):
    from glue_bench.results import claims
    from glue_bench.run.local import LocalExecutor, Slot

    spec = rte()
    atomic_write_json(tmp_path / "jobs" / "manifest.json", {
        "name": "s", "results_dir": str(tmp_path / "results"),
        "jobs": [{"id": spec.job_id, "task": "rte", "method": "full", "size": 1}]})
    claim = claims.try_claim(tmp_path / "results" / spec.job_id, runner_pid=os.getpid())  # "another runner"
    assert claim is not None
    said = []
    executor = LocalExecutor(tmp_path / "jobs", [Slot(name="cpu0")], on_event=lambda kind, msg: said.append(msg))
    assert executor.step() is True  # nothing to start here, but the job is not done: wait
    holder = claims.claim_summary(claim_dir(tmp_path, spec))
    assert said == [f"waiting for 1 job(s) that another runner holds ({holder})"]
    executor.step()
    assert len(said) == 1  # said once, not every poll


def claim_dir(root: Path, spec: JobSpec) -> Path:
    return root / "results" / spec.job_id


def test_gpus_that_are_not_visible_are_refused_before_anything_starts(tmp_path, tiny_bert, real_glue, monkeypatch):
    jobs_dir = planned(tmp_path, tiny_bert, real_glue)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU here
    for dry in ([], ["--dry-run"]):
        proc = glue_bench("run", str(jobs_dir), "--gpus", "0", *dry, cwd=tmp_path, check=False)
        assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0, proc.stderr
        assert "--gpus 0: GPU 0 is not visible here (visible: none)" in proc.stderr
    assert not (tmp_path / "results").exists()
