"""The Slurm executor (glue_bench/run/slurm.py): the generated script, launcher lines and options (no Slurm
needed); then Slurm for real, a throw-away single-node cluster (scripts/slurm_up.sh) running job arrays of tiny
jobs. The two-node cluster is tests/test_slurm_two_nodes.py."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import glue_bench
from slurm_sweeps import results, write_sweep

from glue_bench.results.job_folder import atomic_write_json
from glue_bench.run.slurm import SlurmOptions, launcher_command, rendezvous_port, sbatch_script

# -- the generated script and launcher lines (no Slurm needed) ---------------------------------------------


def test_sbatch_script_for_a_multi_node_gpu_array(tmp_path):
    opts = SlurmOptions(partition="gpu", account="nlp", qos="high", time="08:00:00", gpus_per_job=4, nodes=2,
                        cpus_per_task=16, mem="64G", array_parallelism=8, constraint="a100",
                        sbatch_args=("--exclusive",), signal_seconds=300)
    text = sbatch_script(tmp_path / "jobs" / "s", tmp_path / "a.json", 12, "s", opts, python="/py")
    lines = text.splitlines()
    for expected in ("#SBATCH --job-name=glue-bench-s", "#SBATCH --array=0-11%8", "#SBATCH --nodes=2",
                     "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4", "#SBATCH --partition=gpu",
                     "#SBATCH --account=nlp", "#SBATCH --qos=high", "#SBATCH --time=08:00:00",
                     "#SBATCH --cpus-per-task=16", "#SBATCH --mem=64G", "#SBATCH --constraint=a100",
                     "#SBATCH --exclusive", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@300"):
        assert expected in lines, expected
    assert lines[-1] == (f"exec /py -m glue_bench.run.slurm_task {(tmp_path / 'jobs' / 's').resolve()} "
                         f"{(tmp_path / 'a.json').resolve()} --ranks-per-node 4 --gpus-per-node 4")


def test_one_launcher_per_node_lines():
    two_nodes = launcher_command(Path("/r/j/spec.json"), Path("/r/j"), nodes=2, ranks_per_node=4,
                                 master_addr="gpu017", master_port=29512, rdzv_id="77_3", python="/py")
    assert two_nodes == [
        "srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
        "/py", "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
        "--rdzv-endpoint=gpu017:29512", "--rdzv-id=77_3",
        "-m", "glue_bench.train", "--spec", "/r/j/spec.json", "--output-dir", "/r/j"]
    single = launcher_command(Path("/r/j/spec.json"), Path("/r/j"), 1, 1, "n1", 1, "1_0", python="/py")
    assert single[5:] == ["/py", "-m", "glue_bench.train", "--spec", "/r/j/spec.json", "--output-dir", "/r/j"]


def test_rendezvous_port_is_per_task_not_per_array():
    # the tasks of one array share SLURM_ARRAY_JOB_ID but each has its own SLURM_JOB_ID
    assert rendezvous_port(41, None) != rendezvous_port(42, None)
    assert rendezvous_port(41, 35123) == 35123  # a port the OS found free on the first node wins


def test_slurm_reads_auto_as_one_gpu_per_job(tmp_path):
    from glue_bench.run.options import RunOptions
    from glue_bench.run.slurm import options_for

    atomic_write_json(tmp_path / "manifest.json", {"name": "s", "results_dir": str(tmp_path), "jobs": [],
                                                   "gpus_per_job": "auto"})
    assert options_for(tmp_path).gpus_per_job == 1
    assert options_for(tmp_path, RunOptions(executor="slurm", gpus_per_job=0)).gpus_per_job == 0


def test_no_slurm_on_path_is_one_line(tmp_path, monkeypatch, real_glue, tiny_bert):
    root = write_sweep(tmp_path, tiny_bert, real_glue)
    glue_bench("plan", "tiny.yaml", cwd=root)
    proc = glue_bench("run", "jobs/tiny", "--executor", "slurm", cwd=root, check=False,
                      env={"PATH": str(Path(os.sys.executable).parent)})
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: Slurm is not reachable: no sinfo on PATH (is this a Slurm login node?)"


# -- a real cluster -----------------------------------------------------------------------------------------


def submission(root: Path) -> dict:
    return json.loads((root / "jobs" / "tiny" / "slurm" / "submissions.json").read_text())[-1]


@pytest.fixture(scope="module")
def clean_array(slurm, tmp_path_factory, tiny_bert, real_glue) -> Path:
    root = write_sweep(tmp_path_factory.mktemp("array"), tiny_bert, real_glue)
    glue_bench("plan", "tiny.yaml", cwd=root)
    proc = glue_bench("run", "jobs/tiny", "--executor", "slurm", "--cpus-per-task", "1", cwd=root, timeout=900)
    assert "4 finished, 0 failed" in proc.stdout
    return root


def test_a_sweep_goes_in_as_one_array_and_finishes(clean_array):
    assert len(results(clean_array)) == 4
    sub = submission(clean_array)
    assert len(sub["jobs"]) == 4
    logs = sorted((clean_array / "jobs" / "tiny" / "slurm" / "logs").glob("*.out"))
    assert [p.name for p in logs] == [f"{sub['array_job_id']}_{i}.out" for i in range(4)]
    again = glue_bench("run", "jobs/tiny", "--executor", "slurm", cwd=clean_array)  # done: nothing resubmitted
    assert "4 done and 0 already queued in Slurm: not submitted" in again.stdout
    assert len(json.loads((clean_array / "jobs" / "tiny" / "slurm" / "submissions.json").read_text())) == 1


def test_two_process_job_in_one_allocation(slurm, tmp_path, tiny_bert, real_glue):
    root = write_sweep(tmp_path, tiny_bert, real_glue, tasks=["rte"], methods={"full": {"learning_rate": 1e-4}})
    glue_bench("plan", "tiny.yaml", cwd=root)
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--procs-per-job", "2", cwd=root, timeout=600)
    (metrics,) = results(root).values()
    assert metrics["distributed"]["world_size"] == 2
    assert metrics["distributed"]["eval_rows_per_rank"] == {"dev": [16, 16]}
    log = next((root / "jobs" / "tiny" / "slurm" / "logs").glob("*.out")).read_text()
    assert "srun --nodes=1 --ntasks=1 --ntasks-per-node=1" in log and "--nproc-per-node=2" in log


def wait_for_checkpoint(root: Path, timeout: float = 300) -> None:
    start = time.time()
    while not list((root / "results" / "tiny").glob("*/checkpoints/last-*")):
        assert time.time() - start < timeout, "no checkpoint appeared"
        time.sleep(0.2)


def test_scontrol_requeue_resumes_and_equals_a_clean_run(clean_array, tmp_path, tiny_bert, real_glue):
    from glue_bench.plan.manifest import load_manifest
    from glue_bench.train.stop import PAUSE_ENVIRONMENT

    root = write_sweep(tmp_path, tiny_bert, real_glue)
    glue_bench("plan", "tiny.yaml", cwd=root)
    first = load_manifest(root / "jobs" / "tiny").by_size[0]  # the array's task 0
    # the first job waits after its first `last` checkpoint until a signal comes: the requeue lands mid-job, and
    # not by a race with a two-epoch job that could finish before Slurm delivers it
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--array-parallelism", "1", "--no-wait", cwd=root,
               env={PAUSE_ENVIRONMENT: first})
    wait_for_checkpoint(root)
    task = f"{submission(root)['array_job_id']}_0"
    assert submission(root)["jobs"][0] == first
    subprocess.run(["scontrol", "requeue", task], check=True)
    proc = glue_bench("run", "jobs/tiny", "--executor", "slurm", cwd=root, timeout=900)
    assert "already queued in Slurm: not submitted" in proc.stdout
    final, reference = results(root), results(clean_array)
    assert set(final) == set(reference)
    first = submission(root)["jobs"][0]
    history = [json.loads(x) for x in (root / "results" / "tiny" / first / "history.jsonl").read_text().splitlines()]
    assert [r["event"] for r in history if r.get("event") in ("start", "interrupted")][:2] == ["start", "interrupted"]
    assert any(r.get("event") == "resume" for r in history)
    for job, metrics in final.items():
        assert metrics["dev"]["dev"] == pytest.approx(reference[job]["dev"]["dev"], abs=1e-4), job


def test_time_limit_signal_checkpoints_requeues_and_finishes_once(slurm, tmp_path, tiny_bert, real_glue):
    # The signal that `--signal=B:USR1@T` makes Slurm send ahead of the time limit, sent here with scancel once
    # training is under way: Slurm's own timer fires at 30 s granularity (up to 30 s early), which would make a
    # minute-scale test race the job's start-up. The sbatch line itself is checked in the script test above.
    long = {"tasks": ["rte"], "methods": {"full": {"learning_rate": 1e-4}}, "epochs": 4, "max_train_samples": 512}
    root = write_sweep(tmp_path / "slurm", tiny_bert, real_glue, **long)
    glue_bench("plan", "tiny.yaml", cwd=root)
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--no-wait", cwd=root)
    task = f"{submission(root)['array_job_id']}_0"
    (job,) = submission(root)["jobs"]
    history_file = root / "results" / "tiny" / job / "history.jsonl"
    start = time.time()
    while not (history_file.exists() and '"first_step"' in history_file.read_text()):
        assert time.time() - start < 300, "the job never took a step"
        time.sleep(0.2)
    subprocess.run(["scancel", "--batch", "--signal=USR1", task], check=True)
    glue_bench("run", "jobs/tiny", "--executor", "slurm", cwd=root, timeout=900)
    log = (root / "jobs" / "tiny" / "slurm" / "logs" / f"{task}.out").read_text()
    assert f"{task}: checkpointed; requeueing" in log
    (done, metrics), = results(root).items()
    assert done == job
    history = [json.loads(x) for x in history_file.read_text().splitlines()]
    interrupted = next(r for r in history if r.get("event") == "interrupted")
    assert 0 < interrupted["step"] < metrics["global_steps"]
    assert any(r.get("event") == "resume" and r["step"] == interrupted["step"] for r in history)
    clean = tmp_path / "clean"
    spec = json.loads((root / "jobs" / "tiny" / f"{job}.json").read_text())
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    glue_bench("train", "--spec", str(tmp_path / "spec.json"), "--output-dir", str(clean))
    reference = json.loads((clean / "metrics.json").read_text())
    assert reference["job_id"] == job
    assert metrics["dev"]["dev"] == pytest.approx(reference["dev"]["dev"], abs=1e-4)
    assert metrics["global_steps"] == reference["global_steps"]


def test_cancel_and_unreachable_controller(slurm, tmp_path, tiny_bert, real_glue):
    root = write_sweep(tmp_path, tiny_bert, real_glue, epochs=50)
    glue_bench("plan", "tiny.yaml", cwd=root)
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--no-wait", "--array-parallelism", "1", cwd=root)
    status = glue_bench("status", "jobs/tiny", cwd=root)
    assert f"slurm {submission(root)['array_job_id']}_" in status.stdout
    cancelled = glue_bench("cancel", "jobs/tiny", cwd=root)
    assert f"cancelled Slurm arrays {submission(root)['array_job_id']}" in cancelled.stdout
    start = time.time()
    while subprocess.run(["squeue", "-h", "--name", "glue-bench-tiny"], capture_output=True, text=True).stdout:
        assert time.time() - start < 90, "cancelled jobs are still in Slurm"
        time.sleep(0.5)
    logs = "".join(p.read_text() for p in (root / "jobs" / "tiny" / "slurm" / "logs").glob("*.out"))
    assert "requeueing" not in logs  # a cancelled job stays cancelled
    dead = tmp_path / "dead.conf"
    dead.write_text((slurm / "slurm.conf").read_text().replace("SlurmctldHost=localhost",
                                                               "SlurmctldHost=localhost\nSlurmctldPort=7"))
    proc = glue_bench("run", "jobs/tiny", "--executor", "slurm", cwd=root, check=False,
                      env={"SLURM_CONF": str(dead)})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Slurm is not reachable: sinfo failed")


def test_asha_under_slurm(slurm, tmp_path, tiny_bert, real_glue):
    """`run --executor slurm --prune asha`: every array task runs its job with pruning (one at a time, so the jobs
    reach the rung in order), and which jobs stop follows from their recorded scores by the rule."""
    from glue_bench.pruning import promotes
    from glue_bench.results.job_folder import JobDir

    root = write_sweep(tmp_path, tiny_bert, real_glue, tasks=["rte"], prune_reduction=2,
                       methods={"full": {"learning_rate": [1e-5, 3e-4, 1e-4]}})
    glue_bench("plan", "tiny.yaml", cwd=root)
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--prune", "asha", "--array-parallelism", "1", cwd=root,
               timeout=600)
    done = results(root)
    assert len(done) == 3 and all(m["spec"]["prune"] == "asha" for m in done.values())
    arrivals = sorted((JobDir(root / "results" / "tiny" / j).evaluations()[0]["time"], j) for j in done)
    seen, expected = [], set()
    for _, job_id in arrivals:
        seen.append(JobDir(root / "results" / "tiny" / job_id).evaluations()[0]["eval/task_score"])
        if not promotes(seen[-1], seen, 2):
            expected.add(job_id)
    assert {j for j, m in done.items() if m["pruned"]} == expected
