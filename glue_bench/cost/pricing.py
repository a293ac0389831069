"""Price a planned sweep: each job's tokens, FLOPs and device seconds on a target device, per task and in total.

Token counts come from the token cache's real lengths when the split is cached for the model's tokenizer, else
from the task's official size x `MEAN_TOKENS`. Trainable and frozen matmul weights come from the prepared model
itself (glue_bench.cost.shapes); speeds come from glue_bench.cost.calibration. The ETA of a running sweep, the same
model corrected by what the running jobs report, is glue_bench.cost.eta.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.cost.arithmetic import JobWork, SplitLengths, job_seconds, job_work, schedule_seconds
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
from glue_bench.results.job_folder import read_json
from glue_bench.spec import JobSpec
from glue_bench.tasks import TASKS

log = logging.getLogger(__name__)

# Mean non-pad tokens per example, truncated at 128, with BERT's uncased WordPiece vocabulary (that of
# bert-base-uncased and all-MiniLM-L6-v2), measured on the classic glue_data files. Where a split was not at
# hand: QNLI train and MNLI train take their dev split's mean; QQP (not in the data measured) is an assumption:
# two questions of about 11 words, 13 word pieces each, plus [CLS] and two [SEP].
MEAN_TOKENS: dict[tuple[str, str], float] = {
    ("cola", "train"): 11.3, ("cola", "dev"): 11.7, ("cola", "test"): 11.6,
    ("sst2", "train"): 13.3, ("sst2", "dev"): 25.2, ("sst2", "test"): 24.9,
    ("mrpc", "train"): 53.2, ("mrpc", "dev"): 53.2, ("mrpc", "test"): 53.0,
    ("stsb", "train"): 27.8, ("stsb", "dev"): 31.5, ("stsb", "test"): 27.3,
    ("qqp", "train"): 29.0, ("qqp", "dev"): 29.0, ("qqp", "test"): 29.0,
    ("mnli", "train"): 39.1, ("mnli", "dev_matched"): 39.1, ("mnli", "dev_mismatched"): 40.7,
    ("mnli", "test_matched"): 39.4, ("mnli", "test_mismatched"): 40.5, ("mnli", "ax"): 43.2,
    ("qnli", "train"): 51.0, ("qnli", "dev"): 51.0, ("qnli", "test"): 51.0,
    ("rte", "train"): 66.6, ("rte", "dev"): 64.6, ("rte", "test"): 63.1,
    ("wnli", "train"): 37.1, ("wnli", "dev"): 37.6, ("wnli", "test"): 57.8,
}
MEAN_TOKENS_MAX_LENGTH = 128


# -- token counts ------------------------------------------------------------------------------------------
LengthsLookup = Callable[[str, str], "object | None"]


def mean_tokens(task: str, split: str, max_length: int) -> float:
    """The documented mean length, capped by a shorter truncation."""
    return min(MEAN_TOKENS.get((task, split), MEAN_TOKENS_MAX_LENGTH / 2), float(max_length))


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


def cached_lengths(task: str, split: str, source: str, tokenizer_id: str, max_length: int,
                   cache_root: Path):
    """Non-pad lengths of a split from the token cache (an array), or None when it is not cached: entries are
    matched on what their key file records (task, split, source file, tokenizer, max length)."""
    from glue_bench.glue_files import file_identity
    from glue_bench.train.data import CACHE_FORMAT, KEY_FILE

    if source == "hub":
        return None
    try:
        identity = file_identity(TASKS[task], split, Path(source))
    except (OSError, GlueBenchError):
        return None
    for entry in sorted(Path(cache_root).glob(f"{task}-{split}-{max_length}-*")):
        key = read_json(entry / KEY_FILE) or {}
        if (key.get("format"), key.get("tokenizer"), key.get("source")) == (CACHE_FORMAT, tokenizer_id, identity):
            import datasets

            datasets.disable_progress_bars()
            column = datasets.load_from_disk(str(entry)).data.column("input_ids").combine_chunks()
            offsets = column.offsets.to_numpy()
            return offsets[1:] - offsets[:-1]
    return None


def cache_lookup(model: str, data: str, max_length: int, cache_root: Path) -> LengthsLookup:
    """(task, split) -> cached lengths for `model`'s tokenizer, or a lookup that finds nothing when the tokenizer
    or the data folder is not here (then the documented means are used, and said to be)."""
    from glue_bench.train.data import resolve_data_source, tokenizer_fingerprint

    try:
        from glue_bench.train.models import load_tokenizer

        source = resolve_data_source(data)
        tokenizer_id = tokenizer_fingerprint(load_tokenizer(model))
    except GlueBenchError:
        return lambda task, split: None
    found: dict[tuple[str, str], object] = {}

    def lookup(task: str, split: str):
        if (task, split) not in found:
            found[(task, split)] = cached_lengths(task, split, source, tokenizer_id, max_length, cache_root)
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


# -- the estimate -------------------------------------------------------------------------------------------
@dataclass
class TaskCost:
    """One task's share of a sweep estimate."""

    jobs: int = 0
    examples_x_epochs: int = 0
    train_tokens: int = 0
    eval_tokens: int = 0
    seconds: float = 0.0
    measured_lengths: bool = True


@dataclass
class SweepEstimate:
    """Per task and in total: jobs, examples x epochs, tokens and device seconds, and where the speeds came from."""

    target: Target
    tasks: dict[str, TaskCost] = field(default_factory=dict)
    job_seconds: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    """Method family -> the calibration used, or the fallback and how to measure one."""

    @property
    def total(self) -> TaskCost:
        out = TaskCost(measured_lengths=all(t.measured_lengths for t in self.tasks.values()))
        for t in self.tasks.values():
            out.jobs += t.jobs
            out.examples_x_epochs += t.examples_x_epochs
            out.train_tokens += t.train_tokens
            out.eval_tokens += t.eval_tokens
            out.seconds += t.seconds
        return out

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
        found = find_calibration(calibrations, model_identity(spec.model), spec.method, target)
        if found is not None:
            speed = found.speed
            est.sources.setdefault(spec.method, found.describe())
        else:
            speed = fallback_speed(target, structure.layers)
            est.sources.setdefault(spec.method, describe_fallback(target, spec.model))
        work, measured = spec_work(spec, lookup)
        seconds = job_seconds(work, structure, speed)
        cost = est.tasks.setdefault(spec.task, TaskCost())
        cost.jobs += 1
        cost.examples_x_epochs += work.train_examples * work.epochs
        cost.train_tokens += work.train_tokens
        cost.eval_tokens += work.eval_tokens
        cost.seconds += seconds
        cost.measured_lengths = cost.measured_lengths and measured
        est.job_seconds[spec.job_id] = seconds
    return est


def estimate_plan(specs: list[JobSpec], target: Target, cache_dir: Path | None = None,
                  read_token_cache: bool = True) -> SweepEstimate:
    """`plan --estimate`: structures built as needed (torch's meta device) and the token cache's real lengths."""
    from glue_bench.train.data import default_cache_dir

    root = Path(cache_dir or default_cache_dir())
    structures = Structures(root, build=True)
    lookups: dict[tuple, LengthsLookup] = {}

    def lookup(spec: JobSpec) -> LengthsLookup:
        key = (spec.model, spec.data, spec.max_seq_length)
        if key not in lookups:
            lookups[key] = cache_lookup(*key, root) if read_token_cache else (lambda task, split: None)
        return lookups[key]

    calibrations = load_calibrations(root)
    est = SweepEstimate(target=target)
    for spec in specs:  # grouped by the lookup each needs
        part = estimate_specs([spec], target, structures=structures, calibrations=calibrations, lookup=lookup(spec))
        _merge(est, part)
    structures.save()
    return est


def _merge(into: SweepEstimate, part: SweepEstimate) -> None:
    for task, cost in part.tasks.items():
        mine = into.tasks.setdefault(task, TaskCost())
        mine.jobs += cost.jobs
        mine.examples_x_epochs += cost.examples_x_epochs
        mine.train_tokens += cost.train_tokens
        mine.eval_tokens += cost.eval_tokens
        mine.seconds += cost.seconds
        mine.measured_lengths = mine.measured_lengths and cost.measured_lengths
    into.job_seconds.update(part.job_seconds)
    for method, source in part.sources.items():
        into.sources.setdefault(method, source)


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
    if device not in ("cpu", "cuda"):
        raise GlueBenchError(f"--device {device!r}: choose cpu or cuda")
    if slots < 1:
        raise GlueBenchError(f"--slots {slots}: must be at least 1")
    return Target.cpu(slots) if device == "cpu" else Target.cuda(gpu_type)


def estimate_report(specs: list[JobSpec], target: Target, slots: int = 1) -> list[str]:
    """`plan --estimate` and `sweep --dry-run`: the estimate's lines for the terminal."""
    if target.kind == "cuda":
        fallback_speed(target, 1)  # an unknown --gpu-type is an error before anything is built
    return estimate_lines(estimate_plan(specs, target), slots)
