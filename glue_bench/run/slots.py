"""Where a local job runs and how it starts: slots (GPUs, perhaps shared, or a share of the CPU cores), the
GPUs this machine shows, a job's command and environment, its running process, and whether a failed job ran
out of GPU memory. No torch: GPUs are found with nvidia-smi."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.process import free_port
from glue_bench.run.launch import torchrun_command
from glue_bench.train import rank_arguments


@dataclass
class Slot:
    """Where one job runs: a set of GPUs (perhaps shared with other slots), or a share of the CPU cores."""

    name: str
    gpus: tuple[int, ...] = ()
    threads: int = 1
    shared: bool = False
    """Other slots use the same GPUs (`jobs_per_gpu` > 1)."""


@dataclass
class Running:
    """A job's process as the executor started it."""

    job_id: str
    slot: Slot
    proc: subprocess.Popen
    claim: dict
    started: float
    log: object
    alone: bool = False
    """Runs with its GPUs to itself (after running out of memory beside other jobs)."""
    log_start: int = 0
    """Where this attempt's output starts in train.log."""
    beside: bool = False
    """Another job ran on its GPUs at some time during this attempt."""


class suppress_lookup:
    """Ignore a process that is already gone (or not ours to signal)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, ProcessLookupError | PermissionError)


def visible_gpus() -> list[int]:
    """GPU indices torch would see, without importing torch (nvidia-smi), honouring CUDA_VISIBLE_DEVICES."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) for x in env.split(",") if x.strip().isdigit()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(x) for x in out.stdout.split() if x.strip().isdigit()]


def resolve_gpus_per_job(gpus_per_job: int | str, gpus: list[int] | None) -> tuple[int, str | None]:
    """An explicit GPUs-per-job stays binding; `auto` is one GPU per job when GPUs are visible, else CPU
    slots. Returns (GPUs per job, a line saying what `auto` chose, or None)."""
    if gpus_per_job != "auto":
        return int(gpus_per_job), None
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        return 1, f"gpus_per_job auto: one GPU per job on {len(gpus)} visible GPU(s)"
    return 0, "gpus_per_job auto: no GPU visible, jobs run on CPU slots (--slots)"


def make_slots(gpus: list[int] | None, gpus_per_job: int, cpu_slots: int | None, procs_per_job: int,
               jobs_per_gpu: int = 1) -> list[Slot]:
    """GPU slots of `gpus_per_job` GPUs each (`jobs_per_gpu` slots on each such group), or CPU slots that
    split the cores between them."""
    if gpus_per_job > 0:
        gpus = visible_gpus() if gpus is None else gpus
        if len(gpus) < gpus_per_job:
            raise GlueBenchError(f"jobs need {gpus_per_job} GPU(s) but {len(gpus)} are visible; "
                                 "use --gpus-per-job 0 for CPU jobs")
        groups = [tuple(gpus[i:i + gpus_per_job]) for i in range(0, len(gpus) - gpus_per_job + 1, gpus_per_job)]
        names = [f"gpu{','.join(map(str, g))}" for g in groups]
        if jobs_per_gpu == 1:
            return [Slot(name=n, gpus=g) for n, g in zip(names, groups, strict=True)]
        return [Slot(name=f"{n}/{k}", gpus=g, shared=True) for k in range(jobs_per_gpu)
                for n, g in zip(names, groups, strict=True)]  # round-robin: the first jobs spread over the GPUs
    n = cpu_slots or 1
    threads = max(1, (os.cpu_count() or 1) // (n * procs_per_job))
    return [Slot(name=f"cpu{i}", threads=threads) for i in range(n)]


def job_command(spec_path: Path, out: Path, world: int, port: int | None = None) -> list[str]:
    if world == 1:
        return [sys.executable, *rank_arguments(spec_path, out)]
    return torchrun_command(spec_path, out, world, free_port() if port is None else port)


# What CUDA and torch print when a job runs out of GPU memory.
OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED")


def ran_out_of_memory(log_path: Path, since: int, error: dict | None) -> bool:
    """Whether a failed attempt ran out of GPU memory: its error record or its part of train.log says so."""
    text = " ".join(str(error.get(k, "")) for k in ("type", "message")) if error else ""
    try:
        with log_path.open("rb") as f:
            f.seek(since)
            text += f.read()[-65536:].decode(errors="replace")
    except OSError:
        pass
    return any(marker in text for marker in OOM_MARKERS)


# The job's output goes to its train.log: no progress bars (tqdm's carriage returns) and no colour codes.
LOG_FILE_ENVIRONMENT = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_COLOR": "1", "TERM": "dumb"}


def job_environment(slot: Slot, claim: dict, lease_s: float, port: int | None = None, world: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot.gpus))
    if port is not None:  # its own rendezvous port: jobs sharing a GPU (or a machine) never collide
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        if world == 1:  # the one rank's torch.distributed environment, as a launcher would set it
            env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    env["OMP_NUM_THREADS"] = str(slot.threads)
    env["GLUE_BENCH_CLAIM_TOKEN"] = claim["token"]
    env["GLUE_BENCH_LEASE_S"] = str(lease_s)
    env["GLUE_BENCH_LOG_CAPTURED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(LOG_FILE_ENVIRONMENT)
    return env


def gpu_name() -> str | None:
    """The first visible GPU's name (nvidia-smi), to match a calibration; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip().splitlines() or [None])[0]
