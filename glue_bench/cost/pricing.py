"""Price a planned sweep: each job's tokens, FLOPs and device seconds on a target device, per task and in total.

Token counts come from the token cache's real lengths when the split is cached for the model's tokenizer
(`TokenCache.lengths`), else from the task's official size x its documented mean length
(`glue_bench.tasks.MEAN_TOKENS`). Trainable and frozen matmul weights come from the prepared model itself
(glue_bench.cost.shapes); speeds come from glue_bench.cost.calibration. `price_job` is the one price of a job:
the sweep estimate sums it, and the ETA of a running sweep (glue_bench.cost.eta) corrects it by what the running
jobs report.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench import choices
from glue_bench.choices import Device
from glue_bench.cost.arithmetic import (
    JobWork,
    SplitLengths,
    Structure,
    job_seconds,
    job_work,
    schedule_seconds,
    train_flops_per_token,
)
from glue_bench.cost.calibration import (
    Calibration,
    Target,
    describe_fallback,
    fallback_speed,
    find_calibration,
    load_calibrations,
)
from glue_bench.cost.shapes import Structures
from glue_bench.errors import GlueBenchError
from glue_bench.model_source import model_identity
from glue_bench.spec import JobSpec
from glue_bench.tasks import TASKS, mean_tokens

log = logging.getLogger(__name__)

# -- token counts ------------------------------------------------------------------------------------------
LengthsLookup = Callable[[str, str], "object | None"]


def split_lengths(task: str, split: str, subset: int | None, seed: int, max_length: int,
                  cached: object | None = None) -> SplitLengths:
    """Examples and non-pad tokens of a split (or its random subset, the rows the job will use)."""
    if cached is not None:
        from glue_bench.train.data import subset_rows

        rows = subset_rows(len(cached), subset, seed)
        return SplitLengths(len(rows), int(cached[rows].sum()), True)
    n = TASKS[task].sizes.get(split, 0)
    n = n if subset is None else min(n, subset)
    return SplitLengths(n, round(n * mean_tokens(task, split, max_length)), False)


def cache_lookup(model: str, data: str, max_length: int, cache_root: Path) -> LengthsLookup:
    """(task, split) -> cached lengths for `model`'s tokenizer, or a lookup that finds nothing when the tokenizer
    or the data folder is not here (then the documented means are used, and said to be)."""
    from glue_bench.train.data import TokenCache, resolve_data_source, tokenizer_fingerprint

    try:
        from glue_bench.train.models import load_tokenizer

        source = resolve_data_source(data)
        tokenizer_id = tokenizer_fingerprint(load_tokenizer(model))
    except GlueBenchError:
        return lambda task, split: None
    cache = TokenCache(cache_root)
    found: dict[tuple[str, str], object] = {}

    def lookup(task: str, split: str):
        if (task, split) not in found:
            found[(task, split)] = cache.lengths(TASKS[task], split, source, tokenizer_id, max_length)
        return found[(task, split)]
    return lookup


def spec_work(spec: JobSpec, lookup: LengthsLookup | None = None) -> tuple[JobWork, bool]:
    """A job's work, and whether every split's lengths were measured (the token cache) rather than documented."""
    lookup = lookup or (lambda task, split: None)
    task = TASKS[spec.task]
    n = spec.max_seq_length
    train = split_lengths(spec.task, "train", spec.max_train_samples, spec.data_seed, n, lookup(spec.task, "train"))
    dev = [split_lengths(spec.task, s, spec.max_eval_samples, spec.data_seed + 1, n, lookup(spec.task, s))
           for s in task.dev_splits]
    test = [split_lengths(spec.task, s, None, 0, n, lookup(spec.task, s))
            for s in (task.test_splits if spec.predict_test else ())]
    world = spec.world_size
    work = job_work(train, dev, test, epochs=spec.epochs, per_epoch=spec.steps_per_epoch(train.examples, world),
                    eval_batch=spec.eval_batch(world), eval_every_steps=spec.eval_every_steps)
    return work, all(s.measured for s in (train, *dev, *test))


# -- one job's price -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobPrice:
    """One job's price on a target device."""

    work: JobWork
    """Its steps, tokens and evaluation batches."""
    seconds: float
    """Device seconds of the whole job: start-up, training, evaluation and test prediction."""
    train_seconds: float
    """Of which the training steps."""
    startup_seconds: float
    """Of which the fixed cost: process start, imports, model load, engine, saving the weights and results."""
    measured_lengths: bool
    """Whether every split's lengths came from the token cache (else from documented means)."""
    source: str
    """Where the speed came from: a calibration, or the FLOP fallback and how to measure one."""


def price_job(spec: JobSpec, structure: Structure, target: Target, calibrations: list[Calibration],
              lookup: LengthsLookup | None = None) -> JobPrice:
    """The one price of a job: its work (`spec_work`) at the speed of a calibration of its model and method on
    `target`, else the FLOP fallback. The sweep estimate sums it; the ETA corrects it by the running jobs."""
    found = find_calibration(calibrations, model_identity(spec.model), spec.method, target)
    if found is not None:
        speed, source = found.speed, found.describe()
    else:
        speed, source = fallback_speed(target, structure.layers), describe_fallback(target, spec.model)
    work, measured = spec_work(spec, lookup)
    train_s = speed.train.seconds(work.steps, work.train_tokens * train_flops_per_token(structure, work.train_seq))
    return JobPrice(work, job_seconds(work, structure, speed), train_s, speed.startup_s, measured, source)


# -- the estimate -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TaskCost:
    """One task's share of a sweep estimate (or the total): sums of job prices, added with `+`."""

    jobs: int = 0
    examples_x_epochs: int = 0
    train_tokens: int = 0
    eval_tokens: int = 0
    seconds: float = 0.0
    measured_lengths: bool = True

    @classmethod
    def of(cls, price: JobPrice) -> TaskCost:
        work = price.work
        return cls(1, work.train_examples * work.epochs, work.train_tokens, work.eval_tokens, price.seconds,
                   price.measured_lengths)

    def __add__(self, other: TaskCost) -> TaskCost:
        return TaskCost(self.jobs + other.jobs, self.examples_x_epochs + other.examples_x_epochs,
                        self.train_tokens + other.train_tokens, self.eval_tokens + other.eval_tokens,
                        self.seconds + other.seconds, self.measured_lengths and other.measured_lengths)


@dataclass
class SweepEstimate:
    """Per task and in total: jobs, examples x epochs, tokens and device seconds, and where the speeds came from."""

    target: Target
    tasks: dict[str, TaskCost] = field(default_factory=dict)
    prices: dict[str, JobPrice] = field(default_factory=dict)
    """Job id -> its price, with the phases apart."""
    sources: dict[str, str] = field(default_factory=dict)
    """Method family -> the calibration used, or the fallback and how to measure one."""

    @property
    def job_seconds(self) -> dict[str, float]:
        """Job id -> its device seconds."""
        return {job_id: price.seconds for job_id, price in self.prices.items()}

    @property
    def total(self) -> TaskCost:
        return sum(self.tasks.values(), TaskCost())

    def add(self, task: str, job_id: str, price: JobPrice, method: str) -> None:
        self.tasks[task] = self.tasks.get(task, TaskCost()) + TaskCost.of(price)
        self.prices[job_id] = price
        self.sources.setdefault(method, price.source)

    def wall_seconds(self, slots: int) -> float:
        return schedule_seconds(list(self.job_seconds.values()), slots)


def estimate_specs(specs: list[JobSpec], target: Target, *, structures: Structures,
                   calibrations: list[Calibration] | None = None, lookup: LengthsLookup | None = None) -> SweepEstimate:
    """Price every job of a sweep on `target` (see the module docstring)."""
    calibrations = load_calibrations() if calibrations is None else calibrations
    est = SweepEstimate(target=target)
    for spec in specs:
        structure = structures.get(spec)
        if structure is None:
            raise GlueBenchError(f"no structure known for {spec.job_id}")
        est.add(spec.task, spec.job_id, price_job(spec, structure, target, calibrations, lookup), spec.method)
    return est


def estimate_plan(specs: list[JobSpec], target: Target, cache_dir: Path | None = None,
                  read_token_cache: bool = True, structures: Structures | None = None) -> SweepEstimate:
    """`plan --estimate`: structures built as needed (torch's meta device; `structures`: the caller's, which it
    saves) and the token cache's real lengths."""
    from glue_bench.train.data import default_cache_dir

    root = Path(cache_dir or default_cache_dir())
    structures = structures or Structures(root, build=True)
    lookups: dict[tuple, LengthsLookup] = {}

    def lookup(spec: JobSpec) -> LengthsLookup:
        key = (spec.model, spec.data, spec.max_seq_length)
        if key not in lookups:
            lookups[key] = cache_lookup(*key, root) if read_token_cache else (lambda task, split: None)
        return lookups[key]

    calibrations = load_calibrations(root)
    est = SweepEstimate(target=target)
    for spec in specs:
        structure = structures.get(spec)
        est.add(spec.task, spec.job_id, price_job(spec, structure, target, calibrations, lookup(spec)), spec.method)
    structures.save()
    return est


def estimate_lines(est: SweepEstimate, slots: int = 1) -> list[str]:
    """The estimate as a Markdown table plus the lines that say where its numbers came from."""
    from glue_bench.tasks import GLUE_TASKS

    lines = ["| task | jobs | examples x epochs | non-pad tokens (train / eval + test) | "
             f"device-hours ({est.target.name}) |", "|---|---|---|---|---|"]
    order = [t for t in GLUE_TASKS if t in est.tasks]
    for name in [*order, "total"]:
        cost = est.total if name == "total" else est.tasks[name]
        mark = "" if cost.measured_lengths else "*"
        label = "total" if name == "total" else TASKS[name].display
        lines.append(f"| {label} | {cost.jobs:,} | {cost.examples_x_epochs:,} | {_count(cost.train_tokens)} / "
                     f"{_count(cost.eval_tokens)}{mark} | {cost.seconds / 3600:,.2f} |")
    if not est.total.measured_lengths:
        lines.append("* tokens from official sizes x documented mean lengths (not in the token cache)")
    if slots > 1:
        lines.append(f"wall time on {slots} slots, largest first: {est.wall_seconds(slots) / 3600:,.2f} h")
    lines += [f"{method}: {source}" for method, source in est.sources.items()]
    return lines


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def target_for(device: str | None, gpus_per_job: int | str, gpu_type: str | None = None, slots: int = 1) -> Target:
    """The device to price for: `--device` when given, else the sweep's (`gpus_per_job` 0: the CPU, with the
    threads one of `slots` CPU slots gets; anything else: a GPU of `gpu_type`)."""
    if device is None:
        device = "cpu" if gpus_per_job == 0 else "cuda"
    choices.check(Device, device, "--device")
    if slots < 1:
        raise GlueBenchError(f"--slots {slots}: must be at least 1")
    return Target.cpu(slots) if device == "cpu" else Target.cuda(gpu_type)


def estimate_report(specs: list[JobSpec], target: Target, slots: int = 1) -> list[str]:
    """`plan --estimate` and `sweep --dry-run`: the estimate's lines for the terminal."""
    from glue_bench.cost.counts import count_lines
    from glue_bench.train.data import default_cache_dir

    if target.kind == "cuda":
        fallback_speed(target, 1)  # an unknown --gpu-type is an error before anything is built
    structures = Structures(Path(default_cache_dir()), build=True)  # the price's and the counts' (built once)
    lines = estimate_lines(estimate_plan(specs, target, structures=structures), slots)
    return lines + count_lines(specs, structures)
