"""Start the ranks of one job: in this process, or N processes under torchrun (no torch import here)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from glue_bench.process import ExitCode, free_port
from glue_bench.results.job_folder import JobDir
from glue_bench.spec import JobSpec
from glue_bench.train import rank_arguments


def torchrun_command(spec_path: Path, output_dir: Path, nprocs: int, master_port: int,
                     cache_dir: Path | None = None) -> list[str]:
    """The command that runs `nprocs` ranks of a job on this node under torchrun."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nprocs),
           "--master-addr", "127.0.0.1", "--master-port", str(master_port),
           *rank_arguments(spec_path, output_dir, cache_dir)]
    return cmd


def rank_environment(spec: JobSpec, cores: int | None = None) -> dict[str, str]:
    """Environment for the ranks: CPU ranks split the cores between them instead of oversubscribing."""
    env = dict(os.environ)
    if spec.num_gpus == 0 and spec.num_procs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (cores or os.cpu_count() or 1) // spec.num_procs))
    return env


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one launch of a job ended, and the line that says so (None when the job printed its own error)."""

    code: int
    message: str | None

    @property
    def ok(self) -> bool:
        return self.code == ExitCode.OK


def launch_outcome(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> Outcome:
    """`launch`, with what its exit code means for the user."""
    code = launch(spec, output_dir, cache_dir)
    job = JobDir(output_dir)
    if code == ExitCode.OK:
        return Outcome(code, f"done {spec.job_id} -> {job.metrics_path}")
    if code == ExitCode.INTERRUPTED:
        return Outcome(code, f"stopped; a checkpoint is saved: rerun the same command to resume {spec.job_id}")
    if code == ExitCode.FAILED and job.error_path.is_file():
        return Outcome(code, None)  # a job's own failure: it printed its one line, and error.json keeps it
    return Outcome(code, f"job {spec.job_id} failed (exit {code}); see {job.log_path}")


def launch(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> int:
    """Run the job: in-process for one rank, under torchrun for several. Returns the exit code."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if spec.world_size == 1:
        from glue_bench.train.recipe import run_job

        return run_job(spec, output_dir, cache_dir)
    spec_path = JobDir(output_dir).write_spec(spec)
    cmd = torchrun_command(spec_path, output_dir, spec.world_size, free_port(), cache_dir)
    code = subprocess.call(cmd, env=rank_environment(spec))
    # torchrun turns any failing rank into exit 1; recover the ranks' "interrupted, resumable" code
    return ExitCode.INTERRUPTED if code and JobDir(output_dir).last_event() == "interrupted" else code
