"""What `glue-bench run` (and `sweep`) were asked for: one frozen options object, checked when it is made, that
the executors take whole instead of a dozen keyword arguments each."""

from __future__ import annotations

from dataclasses import dataclass, field

from glue_bench import choices
from glue_bench.choices import Executor, WandbMode
from glue_bench.errors import GlueBenchError
from glue_bench.results.claims import DEFAULT_LEASE_S


@dataclass(frozen=True, slots=True, kw_only=True)
class SlurmRequest:
    """What a run asks of Slurm, named as sbatch names it (`run --executor slurm`)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    """Time limit per job (`HH:MM:SS`, `MM`, ...)."""
    nodes: int = 1
    """Nodes per job (multi-node data parallel); at least 1."""
    cpus_per_task: int | None = None
    """CPUs per task; at least 1."""
    mem: str | None = None
    array_parallelism: int | None = None
    """At most N array tasks at once (`%N`); at least 1."""
    constraint: str | None = None
    sbatch_args: tuple[str, ...] = ()
    """Extra sbatch options, e.g. `--exclusive`."""
    signal_seconds: int = 120
    """Checkpoint and requeue this long before the time limit; at least 1."""
    wait: bool = True
    """Wait for the jobs and show progress."""

    def __post_init__(self) -> None:
        _at_least("--nodes", self.nodes, 1)
        _at_least("--cpus-per-task", self.cpus_per_task, 1)
        _at_least("--array-parallelism", self.array_parallelism, 1)
        _at_least("--signal-seconds", self.signal_seconds, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How to run a planned sweep's jobs (every field is a `run` flag of the same name)."""

    executor: Executor = "local"
    """Where the jobs run: `local` (this machine's GPUs or CPU slots) or `slurm`."""
    gpus: tuple[int, ...] | None = None
    """GPU indices to use (None: all visible)."""
    gpus_per_job: int | None = None
    """GPUs per job, over the sweep's `gpus_per_job` (0: the CPU); 0 or more."""
    procs_per_job: int | None = None
    """CPU processes per job; at least 1."""
    slots: int | None = None
    """Concurrent CPU jobs (the cores are split between them); at least 1."""
    jobs_per_gpu: int | None = None
    """Jobs sharing each GPU, over the sweep's `jobs_per_gpu`; at least 1."""
    retries: int = 0
    """Retries of a failed job; 0 or more."""
    only: tuple[str, ...] | None = None
    """Tasks or job ids to run (None: all)."""
    force: bool = False
    """Rerun done jobs (their old results are moved aside)."""
    lease_s: float = DEFAULT_LEASE_S
    """Claim lease in seconds; more than 0."""
    wandb: WandbMode | None = None
    """wandb mode over the sweep's (None: the sweep's)."""
    dry_run: bool = False
    """Say what would run, and how; run nothing."""
    slurm: SlurmRequest = field(default_factory=SlurmRequest)
    """What to ask of Slurm (`executor` slurm)."""

    def __post_init__(self) -> None:
        choices.check(Executor, self.executor, "--executor")
        if self.wandb is not None:
            choices.check(WandbMode, self.wandb, "--wandb")
        _at_least("--gpus-per-job", self.gpus_per_job, 0)
        _at_least("--procs-per-job", self.procs_per_job, 1)
        _at_least("--slots", self.slots, 1)
        _at_least("--jobs-per-gpu", self.jobs_per_gpu, 1)
        _at_least("--retries", self.retries, 0)
        if not self.lease_s > 0:
            raise GlueBenchError(f"--lease-seconds {self.lease_s}: must be more than 0")
        if self.gpus is not None and any(g < 0 for g in self.gpus):
            raise GlueBenchError(f"--gpus {','.join(map(str, self.gpus))}: GPU indices are 0 or more")


def _at_least(flag: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise GlueBenchError(f"{flag} {value}: must be at least {low}" if low else f"{flag} {value}: must be 0 or more")


def parse_list(values: str | None) -> tuple[str, ...] | None:
    """`cola, rte` -> ("cola", "rte"); None or empty: None."""
    items = tuple(v.strip() for v in values.split(",") if v.strip()) if values else ()
    return items or None


def parse_gpus(gpus: str | None) -> tuple[int, ...] | None:
    """`--gpus 0,1,3` as indices (None: all visible)."""
    try:
        return tuple(int(g) for g in parse_list(gpus)) if gpus else None
    except ValueError:
        raise GlueBenchError(f"--gpus {gpus!r}: give GPU indices, e.g. 0,1,3") from None
