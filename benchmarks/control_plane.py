"""The control plane at the paper sweep's size, on a SYNTHETIC results tree (no training).

Plans jobs/houlsby-vs-full.yaml (648 jobs) and writes a finished results folder for each job, with real-size
prediction files (QQP: 390,965 test and 40,430 dev rows; MNLI: both dev and test splits and AX; the other tasks
at their official sizes). Predictions and scores are made up; only the files' sizes and formats are real.
Then it times what a researcher waits on: `glue-bench status`, one scheduling pass of the local executor with
600 jobs done, `glue-bench report` and `glue-bench submit` + `glue-bench validate`, each as the command a user
runs (a fresh process, start-up included), and, as the baseline in the same run, the pass that counted every
prediction file's rows to decide "done" (what every poll did before `prediction_files` was recorded).
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from glue_bench.results.job_folder import JobDir, atomic_write_json, prediction_rows, write_prediction_file

SWEEP = Path(__file__).resolve().parents[1] / "jobs" / "houlsby-vs-full.yaml"
TARGETS = {"status": 1.0, "scheduling pass": 0.05, "report": 5.0, "submit + validate": 15.0}


def fake_data_folder(root: Path) -> Path:
    """Empty files at every path the sweep needs, so planning's data check passes without the real data."""
    from glue_bench.tasks import TASKS

    folder = root / "glue_data"
    for task in TASKS.values():
        for layout in task.layouts.values():
            (folder / layout.path).parent.mkdir(parents=True, exist_ok=True)
            (folder / layout.path).touch()
    return folder


def prediction_lines(task, split: str, rng: random.Random) -> tuple[str, list[str]]:
    n = task.sizes[split]
    with_labels = split in task.dev_splits
    def draw() -> list[str]:
        if task.is_regression:
            return [f"{rng.uniform(0, 5):.6f}" for _ in range(n)]
        return [str(rng.randrange(task.num_labels)) for _ in range(n)]
    values, labels = draw(), draw()
    pairs = enumerate(zip(values, labels, strict=True))
    lines = [f"{i}\t{v}" + (f"\t{y}" if with_labels else "") for i, (v, y) in pairs]
    return ("idx\tprediction\tlabel" if with_labels else "idx\tprediction"), lines


def dev_metrics(task, lines: list[str]) -> dict[str, float]:
    """The task's real dev metrics of a made-up predictions file."""
    import numpy as np

    from glue_bench.results.metrics import compute_metrics

    columns = np.array([line.split("\t")[1:] for line in lines], dtype=float)
    return compute_metrics(task, task.dev_splits[0], columns[:, 0], columns[:, 1])


def build_tree(root: Path, done_jobs: int | None = None) -> tuple[Path, Path, list[str]]:
    """Plan the sweep under `root` and write a finished folder for its jobs (all, or the first `done_jobs`)."""
    from glue_bench.plan.manifest import plan_sweep
    from glue_bench.plan.sweep_file import load_sweep
    from glue_bench.tasks import TASKS

    sweep = load_sweep(SWEEP)
    sweep = dataclasses.replace(sweep, data=str(fake_data_folder(root)))
    plan = plan_sweep(sweep, root / "jobs", root / "results", weights_needed=False)  # synthetic results: no weights
    rng = random.Random(0)
    files = {(t, s): prediction_lines(TASKS[t], s, rng) for t in {j.task for j in plan.jobs}
             for s in TASKS[t].dev_splits + TASKS[t].test_splits}
    metric_values = {t: dev_metrics(TASKS[t], files[(t, TASKS[t].dev_splits[0])][1])
                     for t in {j.task for j in plan.jobs}}
    ids = []
    for n, spec in enumerate(plan.jobs):
        if done_jobs is not None and n >= done_jobs:
            break
        job = JobDir(plan.results_dir / spec.job_id)
        job.write_spec(spec)
        task = TASKS[spec.task]
        written = {split: write_prediction_file(job.prediction_path(split), *files[(spec.task, split)])
                   for split in task.dev_splits + task.test_splits}
        score = rng.uniform(0.5, 0.9)  # a made-up score per job, so that selection has something to choose
        dev = {split: {k: v * score for k, v in metric_values[spec.task].items()} for split in task.dev_splits}
        atomic_write_json(job.metrics_path, {
            "schema_version": 1, "job_id": spec.job_id, "task": spec.task, "method": spec.method, "synthetic": True,
            "bottleneck": spec.bottleneck, "dev": dev, "task_score": score, "spec": spec.to_dict(),
            "predictions": {s: w["rows"] for s, w in written.items()}, "prediction_files": written,
            "parameters": {"trainable": 1, "base_model": 100, "trainable_percent": 1.0},
            "train_label_distribution": {"counts": [1] * task.num_labels} if not task.is_regression
            else {"mean": 2.5, "std": 1.0}})
        ids.append(spec.job_id)
    return plan.jobs_dir, plan.results_dir, ids


def timed(fn, reps: int) -> dict:
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return {"seconds": statistics.median(seconds), "reps": [round(s, 4) for s in seconds]}


def command(*args: str, cwd: Path) -> None:
    exe = Path(sys.executable).with_name("glue-bench")
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"glue-bench {' '.join(args)} failed: {proc.stderr[-2000:]}")


def scheduling_pass(executor) -> None:
    """What the local executor does every poll when nothing finished: pending jobs, counts, ETA."""
    executor.pending()
    executor.counts()
    executor.eta_seconds()


def run(reps: int = 3, keep: Path | None = None) -> dict:
    from glue_bench.run.local import LocalExecutor, Slot

    root = Path(keep or tempfile.mkdtemp(prefix="glue-bench-control-plane-"))
    try:
        t0 = time.perf_counter()
        jobs_dir, results_dir, done = build_tree(root)
        build_s = time.perf_counter() - t0
        out: dict = {"synthetic": True, "jobs": len(done), "build_seconds": round(build_s, 1),
                     "results_bytes": sum(p.stat().st_size for p in results_dir.rglob("*") if p.is_file())}
        out["status"] = timed(lambda: command("status", str(jobs_dir), cwd=root), reps)
        out["status --verify"] = timed(lambda: command("status", str(jobs_dir), "--verify", cwd=root), 1)

        # 600 done, 48 pending: unmark the last 48 jobs' results (move them out of the folder)
        aside = root / "aside"
        aside.mkdir()
        for job_id in done[600:]:
            shutil.move(results_dir / job_id, aside / job_id)
        executor = LocalExecutor(jobs_dir, [Slot(name=f"gpu{i}", gpus=(i,)) for i in range(8)])
        executor.scan_done()
        assert len(executor.done) == 600 and len(executor.pending()) == 48
        out["scheduling pass"] = timed(lambda: scheduling_pass(executor), max(reps, 20))

        def old_pass() -> None:  # every job's "done" from its files' row counts, as before prediction_files
            for job_id in executor.order:
                metrics = JobDir(results_dir / job_id).metrics()
                if metrics is not None:
                    all(prediction_rows(results_dir / job_id / "predictions" / f"{s}.tsv") == n
                        for s, n in metrics["predictions"].items())
        out["scheduling pass, row-counting baseline"] = timed(old_pass, 1)
        for job_id in done[600:]:
            shutil.move(aside / job_id, results_dir / job_id)

        out["report"] = timed(lambda: command("report", str(results_dir), cwd=root), reps)

        def submit_and_validate() -> None:
            command("submit", str(results_dir), "--out", str(root / "submission.zip"), cwd=root)
            command("validate", str(root / "submission.zip"), cwd=root)
        out["submit + validate"] = timed(submit_and_validate, reps)
        out["ratio row-counting baseline / scheduling pass"] = (
            out["scheduling pass, row-counting baseline"]["seconds"] / out["scheduling pass"]["seconds"])
        return out
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def table(result: dict) -> str:
    lines = ["| control plane, 648 jobs (synthetic results) | median | target |", "|---|---|---|"]
    for name in ("status", "status --verify", "scheduling pass", "scheduling pass, row-counting baseline", "report",
                 "submit + validate"):
        target = TARGETS.get(name)
        seconds = result[name]["seconds"]
        shown = f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds:.2f} s"
        lines.append(f"| {name} | {shown} | {f'<= {target:g} s' if target else '-'} |")
    ratio = result["ratio row-counting baseline / scheduling pass"]
    lines.append(f"| row-counting baseline / scheduling pass | {ratio:,.0f}x | - |")
    return "\n".join(lines)
