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
    return {"sweep": str(sweep_file), "jobs": len(specs), "slots": slots, "threads_per_job": threads,
            "calibration_task": task, "methods": families, "calibrate_seconds": round(calibrate_s, 1),
            "estimated_wall_seconds": round(predicted, 1), "measured_wall_seconds": round(measured, 1),
            "estimated_device_seconds": round(estimate.total.seconds, 1),
            "ratio_estimated_to_measured": predicted / measured, "estimate": lines}


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
    return result
