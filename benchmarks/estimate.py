"""The estimate against a measured sweep: calibrate here on a task and settings that are not the sweep's, price
the sweep from that calibration, run the sweep, and compare (estimated wall time / measured wall time).

    python -m benchmarks estimate [--sweep jobs/demo.yaml] [--slots 2] [--out benchmarks/results-estimate.json]

The sweep file is read when this runs, so a changed demo is measured as it is. Everything runs in a fresh
folder with a fresh token cache, offline, as `scripts/demo.py` runs the demo: the calibration's task is one the
sweep does not train on, so its tokenised splits are the only ones cached when the sweep is priced (the
sweep's own lengths come from the documented means, as for a sweep not yet run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATE_TASKS = ("rte", "cola", "wnli", "mrpc", "stsb", "sst2")


def calibration_task(sweep_tasks: tuple[str, ...], data: Path) -> str:
    """The first task with training data here that the sweep does not train on."""
    from glue_bench.tasks import TASKS

    for task in CANDIDATE_TASKS:
        if task not in sweep_tasks and (data / TASKS[task].layouts["train"].path).is_file():
            return task
    raise SystemExit(f"no task outside the sweep's ({', '.join(sweep_tasks)}) has training data in {data}")


def run(sweep_file: Path, data: Path, slots: int, work: Path) -> dict:
    from glue_bench.cost.calibration import Target, threads_per_slot
    from glue_bench.cost.pricing import estimate_lines, estimate_plan
    from glue_bench.plan.sweep_file import expand_sweep, load_sweep

    sweep = load_sweep(sweep_file)
    specs = expand_sweep(sweep)
    task = calibration_task(sweep.tasks, data)
    families = list(dict.fromkeys(s.method for s in specs))
    env = {**os.environ, "GLUE_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
           "GLUE_BENCH_CACHE": str(work / "cache"), "TOKENIZERS_PARALLELISM": "false"}
    exe = str(Path(sys.executable).with_name("glue-bench"))
    threads = threads_per_slot(slots)
    start = time.perf_counter()
    cmd = [exe, "calibrate", "--model", sweep.model, "--task", task, "--data-dir", str(data), "--device", "cpu",
           "--threads", str(threads), *[a for f in families for a in ("--method", f)]]
    subprocess.run(cmd, cwd=work, env=env, check=True)
    calibrate_s = time.perf_counter() - start

    os.environ["GLUE_BENCH_CACHE"] = env["GLUE_BENCH_CACHE"]
    os.environ["GLUE_DATA_DIR"] = str(data)
    estimate = estimate_plan(specs, Target.cpu(slots), work / "cache")
    lines = estimate_lines(estimate, slots)
    print("\n".join(lines), flush=True)

    start = time.perf_counter()
    subprocess.run([exe, "sweep", str(sweep_file), "--slots", str(slots)], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    measured = time.perf_counter() - start
    predicted = estimate.wall_seconds(slots)
    jobs = per_job(estimate, work / "jobs" / sweep.name / "events.jsonl")
    return {"sweep": str(sweep_file), "jobs": len(specs), "slots": slots, "threads_per_job": threads,
            "per_job": jobs, "evaluation_dominated": summary([j for j in jobs if j["evaluation_share"] > 0.5]),
            "training_dominated": summary([j for j in jobs if j["evaluation_share"] <= 0.5]),
            "calibration_task": task, "methods": families, "calibrate_seconds": round(calibrate_s, 1),
            "estimated_wall_seconds": round(predicted, 1), "measured_wall_seconds": round(measured, 1),
            "estimated_device_seconds": round(estimate.total.seconds, 1),
            "ratio_estimated_to_measured": predicted / measured, "estimate": lines}


def per_job(estimate, events: Path) -> list[dict]:
    """Each job's estimated seconds (and its phases) beside what the runner measured (its `done` event)."""
    import json

    measured = {}
    for line in events.read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "done":
            measured[record["job"]] = record["seconds"]
    out = []
    for job_id, price in estimate.prices.items():
        evaluation = price.seconds - price.train_seconds - price.startup_seconds
        out.append({"job": job_id, "estimated_seconds": round(price.seconds, 1),
                    "measured_seconds": measured.get(job_id), "train_seconds": round(price.train_seconds, 1),
                    "evaluation_seconds": round(evaluation, 1), "startup_seconds": round(price.startup_seconds, 1),
                    "evaluation_share": round(evaluation / price.seconds, 3) if price.seconds else 0.0,
                    "ratio": round(price.seconds / measured[job_id], 3) if measured.get(job_id) else None})
    return out


def summary(jobs: list[dict]) -> dict:
    """How far the estimate is off on a group of jobs: the median and the worst of estimated / measured."""
    import statistics

    ratios = [j["ratio"] for j in jobs if j["ratio"]]
    if not ratios:
        return {"jobs": len(jobs)}
    worst = max(ratios, key=lambda r: abs(r - 1))
    return {"jobs": len(jobs), "median_ratio": round(statistics.median(ratios), 3), "worst_ratio": worst}


def main(sweep_file: Path, data: Path, slots: int, out: Path | None) -> dict:
    import json

    with tempfile.TemporaryDirectory(prefix="glue-bench-estimate-") as tmp:
        result = run(sweep_file.resolve(), data.resolve(), slots, Path(tmp))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"estimate {result['estimated_wall_seconds'] / 60:.1f} min, measured "
          f"{result['measured_wall_seconds'] / 60:.1f} min: estimated / measured = "
          f"{result['ratio_estimated_to_measured']:.2f} (calibrated on "
          f"{result['calibration_task']}, not a task of the sweep)")
    for group in ("evaluation_dominated", "training_dominated"):
        print(f"{group.replace('_', '-')} jobs: {result[group]}")
    return result
