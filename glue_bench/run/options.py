"""What `glue-bench run` (and `sweep`) were asked for: one frozen options object, checked when it is made, that
the executors take whole instead of a dozen keyword arguments each."""

from __future__ import annotations

from dataclasses import dataclass, field

from glue_bench import choices
from glue_bench.choices import Executor, Prune, WandbMode
from glue_bench.errors import GlueBenchError
from glue_bench.results.claims import DEFAULT_LEASE_S


@dataclass(frozen=True, slots=True, kw_only=True)
class SlurmOptions:
    """sbatch options, named as Slurm names them (`run --executor slurm`); `gpus_per_job` and `procs_per_job` come
    from the sweep unless the run overrides them (`slurm.options_for`)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    """Time limit (`HH:MM:SS`, `MM`, ...)."""
    gpus_per_job: int = 0
    """GPUs per node for each job."""
    nodes: int = 1
    cpus_per_task: int | None = None
    mem: str | None = None
    array_parallelism: int | None = None
    """The `%N` throttle: at most N array tasks at once."""
    constraint: str | None = None
    sbatch_args: tuple[str, ...] = ()
    """Free-form extra sbatch options, e.g. `--exclusive`."""
    procs_per_job: int = 1
    """CPU ranks per node when gpus_per_job is 0."""
    signal_seconds: int = 120
    """Seconds before the time limit at which Slurm signals the job to checkpoint and requeue."""
    prune: Prune | None = None
    """ASHA over the sweep's `prune` (None: the sweep's); set from `RunOptions.prune` by `slurm.options_for`."""

    def __post_init__(self) -> None:
        _at_least("--nodes", self.nodes, 1)
        _at_least("--cpus-per-task", self.cpus_per_task, 1)
        _at_least("--array-parallelism", self.array_parallelism, 1)
        _at_least("--signal-seconds", self.signal_seconds, 1)

    @property
    def ranks_per_node(self) -> int:
        return self.gpus_per_job if self.gpus_per_job > 0 else self.procs_per_job


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
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    """What to ask of Slurm (`executor` slurm)."""
    wait: bool = True
    """Slurm: wait for the jobs and show progress."""
    prune: Prune | None = None
    """`asha` or `none` over the sweep's `prune` key (None: the sweep's); docs/pruning.md."""

    def __post_init__(self) -> None:
        choices.check(Executor, self.executor, "--executor")
        if self.wandb is not None:
            choices.check(WandbMode, self.wandb, "--wandb")
        if self.prune is not None:
            choices.check(Prune, self.prune, "--prune")
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
