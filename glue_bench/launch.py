"""Start the ranks of one job: in this process, or N processes under torchrun (no torch import here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from glue_bench.results import JobDir
from glue_bench.spec import JobSpec
from glue_bench.stop import EXIT_INTERRUPTED, free_port

__all__ = ["EXIT_INTERRUPTED", "free_port", "launch", "torchrun_command", "rank_environment", "last_event"]


def torchrun_command(spec_path: Path, output_dir: Path, nprocs: int, master_port: int,
                     cache_dir: Path | None = None) -> list[str]:
    """The command that runs `nprocs` ranks of a job on this node under torchrun."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nprocs),
           "--master-addr", "127.0.0.1", "--master-port", str(master_port),
           "-m", "glue_bench.train", "--spec", str(spec_path), "--output-dir", str(output_dir)]
    if cache_dir is not None:
        cmd += ["--cache-dir", str(cache_dir)]
    return cmd


def rank_environment(spec: JobSpec, cores: int | None = None) -> dict[str, str]:
    """Environment for the ranks: CPU ranks split the cores between them instead of oversubscribing."""
    env = dict(os.environ)
    if spec.num_gpus == 0 and spec.num_procs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (cores or os.cpu_count() or 1) // spec.num_procs))
    return env


def launch(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> int:
    """Run the job: in-process for one rank, under torchrun for several. Returns the exit code."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if spec.world_size == 1:
        from glue_bench.train import run_job

        return run_job(spec, output_dir, cache_dir)
    spec_path = JobDir(output_dir).write_spec(spec)
    cmd = torchrun_command(spec_path, output_dir, spec.world_size, free_port(), cache_dir)
    code = subprocess.call(cmd, env=rank_environment(spec))
    # torchrun turns any failing rank into exit 1; recover the ranks' "interrupted, resumable" code
    return EXIT_INTERRUPTED if code and last_event(output_dir) == "interrupted" else code


def last_event(output_dir: Path) -> str | None:
    """The `event` of the last history record, if it has one."""
    try:
        lines = (output_dir / "history.jsonl").read_text().splitlines()
    except OSError:
        return None
    return json.loads(lines[-1]).get("event") if lines else None
