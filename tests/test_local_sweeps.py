"""Sweeps run for real by the local executor (glue_bench/run/local.py): tiny jobs as subprocesses with real DeepSpeed
on 2 CPU slots; a machine crash, two runners, a broken data file, an interrupt. The executor with stand-in jobs
is tests/test_local_executor.py."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import yaml
from conftest import glue_bench

from glue_bench.results.job_folder import is_done


def write_sweep(root: Path, model: Path, data: Path, **changes) -> Path:
    sweep = {"name": "tiny", "model": str(model), "data": str(data), "tasks": ["rte", "mrpc", "stsb"],
             "methods": {"full": {"learning_rate": 1e-4}, "houlsby": {"bottleneck": 4, "learning_rate": 1e-3}},
             "epochs": 2, "seeds": 1, "batch_size": 16, "max_seq_length": 64, "max_train_samples": 128,
             "max_eval_samples": 32, "predict_test": False, "gpus_per_job": 0, **changes}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def events(root: Path) -> list[dict]:
    path = root / "jobs" / "tiny" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def results(root: Path) -> dict[str, dict]:
    out = {}
    for folder in (root / "results" / "tiny").iterdir():
        if is_done(folder):
            out[folder.name] = json.loads((folder / "metrics.json").read_text())
    return out


def runner(root: Path, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("glue-bench")
    return subprocess.Popen([str(exe), "run", "jobs/tiny", "--slots", "2", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def states(pid: int) -> set[str]:
    """The state letters of a process's threads in /proc (R, S, D, T stopped, Z zombie, ...); {"X"} once it is
    gone."""
    found = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError):
                found.add((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return found or {"X"}


def descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_until(condition, what: str, timeout: float = 120) -> None:
    start = time.time()
    while not condition():
        assert time.time() - start < timeout, what
        time.sleep(0.01)


def all_in(pids: list[int], letters: str) -> bool:
    return all(states(p) <= set(letters) for p in pids)


def freeze(pid: int) -> list[int]:
    """SIGSTOP a process and every process under it; their pids, once every thread of each is stopped (or gone):
    from then on nothing of theirs changes on disk."""
    frozen, new = [], [pid]
    while new:
        for p in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
        frozen += new
        wait_until(partial(all_in, list(frozen), "TZX"), "a process did not stop")
        new = sorted(descendants(pid) - set(frozen))  # started before its parent stopped
    return frozen


def thaw(pids: list[int]) -> None:
    for p in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGCONT)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_bert, real_glue) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    glue_bench("plan", str(write_sweep(root, tiny_bert, real_glue)), cwd=root)
    proc = glue_bench("run", "jobs/tiny", "--slots", "2", cwd=root)
    assert "done 6, running 0, failed 0, pending 0" in proc.stdout
    return root


def test_six_jobs_on_two_slots_all_done(uninterrupted):
    for log in (uninterrupted / "results" / "tiny").glob("*/train.log"):
        text = log.read_text()
        assert "\x1b[" not in text and "\r" not in text, log  # no colour codes, no progress bars
    starts = [e for e in events(uninterrupted) if e["event"] == "start"]
    assert len(starts) == 6 and {e["slot"] for e in starts} == {"cpu0", "cpu1"}
    assert len(results(uninterrupted)) == 6
    status = glue_bench("status", "jobs/tiny", cwd=uninterrupted)
    assert "done 6, running 0, failed 0, pending 0" in status.stdout
    again = glue_bench("run", "jobs/tiny", "--slots", "2", cwd=uninterrupted)  # done jobs never rerun
    assert len([e for e in events(uninterrupted) if e["event"] == "start"]) == 6
    assert "0 finished now" in again.stdout


def test_machine_crash_mid_sweep_loses_and_duplicates_nothing(uninterrupted, tiny_bert, real_glue, tmp_path):
    root = tmp_path / "crash"
    glue_bench("plan", str(write_sweep(root, tiny_bert, real_glue)), cwd=root)
    proc = runner(root)

    def mid_epoch_two() -> bool:
        folders = list((root / "results" / "tiny").glob("*")) if (root / "results" / "tiny").exists() else []
        return any(is_done(f) for f in folders) and any(
            list(f.glob("checkpoints/last-*")) and not is_done(f) for f in folders)

    start = time.time()
    while True:
        assert proc.poll() is None and time.time() - start < 300, "the sweep ended before the crash point"
        if mid_epoch_two():
            frozen = freeze(proc.pid)  # the runner and every job process it started, stopped where they are
            if mid_epoch_two():  # and still so now that nothing moves: the crash point
                break
            thaw(frozen)
        time.sleep(0.02)
    for pid in frozen:  # the machine crashes: every process dies at once
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    wait_until(partial(all_in, frozen, "ZX"), "a killed job process lives on")
    done_before = set(results(root))
    crashed_events = len(events(root))
    assert 0 < len(done_before) < 6

    glue_bench("run", "jobs/tiny", "--slots", "2", cwd=root)
    after = events(root)[crashed_events:]
    restarted = {e["job"] for e in after if e["event"] == "start"}
    assert not restarted & done_before  # nothing done is run again
    final = results(root)
    assert len(final) == 6
    resumed = [j for j in restarted if any(
        r.get("event") == "resume" and r["step"] > 0
        for r in map(json.loads, (root / "results" / "tiny" / j / "history.jsonl").read_text().splitlines()))]
    assert resumed, "no job resumed from a checkpoint"
    reference = results(uninterrupted)
    for job, metrics in final.items():
        for split, values in metrics["dev"].items():
            assert values == pytest.approx(reference[job]["dev"][split], abs=1e-4), job


def test_two_runners_run_each_job_exactly_once(tiny_bert, real_glue, tmp_path):
    root = tmp_path / "two"
    glue_bench("plan", str(write_sweep(root, tiny_bert, real_glue, epochs=1)), cwd=root)
    a, b = runner(root, "--slots", "1"), runner(root, "--slots", "1")
    assert a.wait(timeout=600) == 0 and b.wait(timeout=600) == 0
    starts = [e["job"] for e in events(root) if e["event"] == "start"]
    assert sorted(starts) == sorted(set(starts)) and len(starts) == 6
    assert len(results(root)) == 6


def test_broken_data_fails_is_retried_and_reported_others_finish(tiny_bert, real_glue, tmp_path):
    data = tmp_path / "glue_data"
    data.mkdir()
    os.symlink(real_glue / "MRPC", data / "MRPC")
    shutil.copytree(real_glue / "RTE", data / "RTE")
    (data / "RTE" / "train.tsv").chmod(0o644)
    with (data / "RTE" / "train.tsv").open("a") as f:
        f.write("9999\tonly two columns\n")
    root = tmp_path / "broken"
    glue_bench("plan", str(write_sweep(root, tiny_bert, data, tasks=["rte", "mrpc"], epochs=1,
                                       methods={"full": {"learning_rate": 1e-4}})), cwd=root)
    proc = glue_bench("run", "jobs/tiny", "--slots", "2", "--retries", "1", cwd=root, check=False)
    assert proc.returncode == 1
    assert "failed rte-full" in proc.stderr and "RTE/train.tsv:2492: malformed row" in proc.stderr
    rte = [e for e in events(root) if e["job"].startswith("rte")]
    assert [e["event"] for e in rte] == ["start", "retry", "start", "failed"]
    assert list(results(root)) == [j for j in results(root) if j.startswith("mrpc")] and len(results(root)) == 1
    error = json.loads(next((root / "results" / "tiny").glob("rte-*/error.json")).read_text())
    assert error["attempt"] == 2 and error["type"] == "GlueBenchError"
    status = glue_bench("status", "jobs/tiny", cwd=root)
    assert "done 1, running 0, failed 1, pending 0" in status.stdout and "malformed row" in status.stdout


def test_run_dry_run_says_what_would_run(tiny_bert, real_glue, tmp_path):
    glue_bench("plan", str(write_sweep(tmp_path, tiny_bert, real_glue)), cwd=tmp_path)
    proc = glue_bench("run", "jobs/tiny", "--slots", "2", "--only", "rte", "--dry-run", cwd=tmp_path)
    assert "would run 2 of 2 jobs on 2 slot(s) (cpu0, cpu1)" in proc.stdout
    assert "(--only: 2 of the sweep's 6)" in proc.stdout
    assert not (tmp_path / "results").exists()
    bad = glue_bench("run", "jobs/tiny", "--only", "squad", "--dry-run", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "--only squad: neither a task nor a job id" in bad.stderr


def test_interrupt_stops_jobs_with_a_checkpoint_and_releases_claims(tiny_bert, real_glue, tmp_path):
    root = tmp_path / "ctrlc"
    glue_bench("plan", str(write_sweep(root, tiny_bert, real_glue, tasks=["rte"], epochs=40)), cwd=root)
    proc = runner(root)
    start = time.time()

    def both_training() -> bool:
        histories = list((root / "results" / "tiny").glob("*/history.jsonl"))
        return len(histories) == 2 and all("first_step" in h.read_text() for h in histories)

    while not both_training():
        assert time.time() - start < 180 and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert {e["event"] for e in events(root)} >= {"start", "interrupted"}
    assert not list((root / "results" / "tiny").glob("*/claim"))
    assert list((root / "results" / "tiny").glob("*/checkpoints/last-*"))


def test_asha_prunes_while_the_sweep_runs_and_jobs_record_what_the_protocols_need(tiny_bert, real_glue, tmp_path):
    """Four learning rates of RTE, one slot (so the jobs reach the rung in the planned order), ASHA with reduction
    2 (one rung, after epoch 1 of 2); 16 of the 64 training rows held out as the choosing set. Which jobs are
    pruned follows from the scores the jobs recorded, by the rule; a second run starts nothing."""
    import numpy as np

    from glue_bench.pruning import promotes
    from glue_bench.results.job_folder import JobDir
    from glue_bench.results.metrics import dev_half_a

    sweep = write_sweep(tmp_path, tiny_bert, real_glue, tasks=["rte"], methods={"full": {"learning_rate": [
        1e-5, 3e-4, 1e-4, 1e-3]}}, max_train_samples=64, max_eval_samples=48, heldout_train_rows=16, prune="asha",
        prune_reduction=2)
    glue_bench("plan", str(sweep), cwd=tmp_path)
    ran = glue_bench("run", "jobs/tiny", "--slots", "1", cwd=tmp_path)
    starts = [e["job"] for e in events(tmp_path) if e["event"] == "start"]
    assert len(starts) == 4 and len(results(tmp_path)) == 4  # a pruned job is finished
    seen, expected = [], set()
    for job_id in starts:  # the rule applied to the recorded scores after epoch 1, in the order the jobs ran
        job = JobDir(tmp_path / "results" / "tiny" / job_id)
        first = job.evaluations()[0]
        assert first["epoch"] == 1.0
        seen.append(first["eval/task_score"])
        if not promotes(seen[-1], seen, 2):
            expected.add(job_id)
        metrics = results(tmp_path)[job_id]
        assert metrics["train_examples"] == 48 and metrics["spec"]["prune"] == "asha"
        for record in job.evaluations():  # dev halves and the held-out rows at every evaluation
            assert {"eval/half_a/task_score", "eval/half_b/task_score", "eval/heldout/task_score"} <= set(record)
            kept = np.load(job.eval_prediction_path("dev", record["step"]))
            labels = np.array([float(line.split("\t")[2]) for line in
                               job.prediction_path("dev").read_text().splitlines()[1:]])
            b = ~dev_half_a(len(labels))
            assert float(np.mean(kept[b] == labels[b])) == pytest.approx(record["eval/half_b/accuracy"])
    pruned = {j for j, m in results(tmp_path).items() if m["pruned"]}
    assert pruned == expected and pruned  # the first job always goes on; with 4 jobs at least one is stopped
    assert f"4 finished now, {len(pruned)} of them pruned by ASHA" in ran.stdout
    assert {e["job"] for e in events(tmp_path) if e["event"] == "done" and e.get("pruned_after_epoch") == 1} == pruned
    assert all(results(tmp_path)[j]["pruned"]["epoch"] == 1 and results(tmp_path)[j]["global_steps"] ==
               results(tmp_path)[j]["global_steps"] for j in pruned)
    again = glue_bench("run", "jobs/tiny", "--slots", "1", cwd=tmp_path)
    assert "0 finished now" in again.stdout and len([e for e in events(tmp_path) if e["event"] == "start"]) == 4
    report = glue_bench("report", "results/tiny", "--protocol", "held-out", cwd=tmp_path)
    assert f"{len(pruned)} pruned by ASHA" in report.stdout
    data = json.loads((tmp_path / "results" / "tiny" / "report" / "report.json").read_text())
    assert not set(data["rows"][0]["selection"]["rte"]["jobs"]) & pruned
