"""glue-bench's own training loop at another commit against this tree's, in one run: `python -m benchmarks
commits --against COMMIT`. The other commit is checked out in a temporary git worktree; each repetition runs the
`loop` suite (full fine-tuning, the same rows, steps and batches) once from each tree, alternating, each in a fresh
process with the same Python environment; medians and this tree / the other's examples per second are reported.
The question it answers: did the loop lose (or gain) speed between two commits, on this machine, now."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.loops import Setup, clean_env

ROOT = Path(__file__).resolve().parents[1]


def loop_in(tree: Path, task: str, rows: int, steps: int, warmup: int, data: Path, setup: Setup) -> dict:
    """The `loop` suite run from `tree` (its own glue_bench and benchmarks come first on the path)."""
    cmd = [sys.executable, "-m", "benchmarks", "loop", "--loop", "glue-bench", "--task", task, "--rows", str(rows),
           "--steps", str(steps), "--warmup", str(warmup), "--data-dir", str(data), "--model", setup.model,
           "--device", setup.device, "--precision", setup.precision]
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env={**clean_env(), "PYTHONPATH": str(tree)})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("LOOP ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"the loop in {tree} failed on {task}:\n{proc.stderr[-2000:]}")
    return json.loads(line[5:])


def against(commit: str, data: Path, reps: int, steps: int, warmup: int, setup: Setup) -> dict:
    out: dict = {"against": commit, "this": _head()}
    with tempfile.TemporaryDirectory(prefix="glue-bench-commit-") as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), commit], check=True,
                       capture_output=True)
        try:
            for task in ("sst2", "rte"):
                runs: dict[str, list[float]] = {"this": [], "other": []}
                for _ in range(reps):  # alternate the trees each repetition
                    for name, tree in (("this", ROOT), ("other", other)):
                        timed = loop_in(tree, task, 2000, steps, warmup, data, setup)
                        runs[name].append(timed["examples"] / timed["seconds"])
                med = {k: statistics.median(v) for k, v in runs.items()}
                out[task] = {"examples_per_s": med, "reps": runs, "this_over_other": med["this"] / med["other"]}
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], capture_output=True)
    return out


def _head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
