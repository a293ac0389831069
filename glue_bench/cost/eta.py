"""The ETA of a running sweep: the jobs' estimates (glue_bench.cost.pricing's model, without torch), corrected by the
training throughput the running jobs report, scheduled on the sweep's slots."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from glue_bench.cost.arithmetic import schedule_seconds
from glue_bench.cost.calibration import Target, load_calibrations
from glue_bench.cost.pricing import price_job
from glue_bench.cost.shapes import Structures
from glue_bench.errors import GlueBenchError
from glue_bench.results.job_folder import JobDir
from glue_bench.spec import JobSpec


@dataclass(frozen=True, slots=True)
class JobEstimate:
    """One planned job's estimate, for the ETA."""

    seconds: float
    """Device seconds of the whole job."""
    train_seconds: float
    """Of which training steps."""
    train_examples: int
    """Training examples over all epochs."""
    epochs: int

    @property
    def examples_per_s(self) -> float:
        return self.train_examples / self.train_seconds if self.train_seconds > 0 else 0.0


def job_estimates(specs: list[JobSpec], target: Target, cache_dir: Path | None = None) -> dict[str, JobEstimate]:
    """Estimates of planned jobs without torch: only jobs whose structure is already known (from `plan
    --estimate` or `calibrate`) are priced; an empty result means the ETA falls back to finished jobs' mean."""
    from glue_bench.train.data import default_cache_dir

    root = Path(cache_dir or default_cache_dir())
    structures = Structures(root, build=False)
    calibrations = load_calibrations(root)
    out = {}
    for spec in specs:
        structure = structures.get(spec)
        if structure is None:
            continue
        try:
            price = price_job(spec, structure, target, calibrations)
        except GlueBenchError:  # a GPU type without a fallback speed: price it as the default GPU
            price = price_job(spec, structure, Target.cuda(), calibrations)
        work = price.work
        out[spec.job_id] = JobEstimate(price.seconds, price.train_seconds, work.train_examples * work.epochs,
                                       work.epochs)
    return out


def latest_training_record(job: JobDir) -> dict:
    """The job's epoch and its last reported training throughput (`train/examples_per_s`), from the tail of
    history.jsonl ({} before its first record)."""
    out: dict = {}
    for record in job.history_tail(16384):
        if "epoch" not in out and isinstance(record.get("epoch"), int | float):
            out["epoch"] = record["epoch"]
        if "train/examples_per_s" not in out and record.get("train/examples_per_s"):
            out["train/examples_per_s"] = record["train/examples_per_s"]
        if len(out) == 2:
            break
    return out


def speed_correction(predicted: list[float], reported: list[float]) -> float:
    """How much slower (> 1) or faster than estimated the jobs run: the median of predicted / reported
    training examples per second over the jobs that report one (1 when none does)."""
    ratios = [p / r for p, r in zip(predicted, reported, strict=True) if p > 0 and r and r > 0]
    return statistics.median(ratios) if ratios else 1.0


def remaining_seconds(estimate: JobEstimate, progress: dict, correction: float) -> float:
    """What is left of a running job: its estimate less the part of its epochs done, scaled by the correction."""
    epoch = progress.get("epoch")
    done = min(1.0, float(epoch) / estimate.epochs) if isinstance(epoch, int | float) and estimate.epochs else 0.0
    return max(0.0, estimate.seconds - estimate.train_seconds * done) * correction if done < 1 else 0.0


def sweep_eta(estimates: dict[str, JobEstimate], running: dict[str, dict], pending: list[str],
              slots: int) -> tuple[float, float] | None:
    """(seconds left, correction) of a sweep from its job estimates and the running jobs' latest progress
    records (`latest_training_record`); None when no job left has an estimate."""
    reported = [(estimates[j].examples_per_s, p.get("train/examples_per_s")) for j, p in running.items()
                if j in estimates]
    correction = speed_correction([a for a, _ in reported], [b for _, b in reported])
    left = [remaining_seconds(estimates[j], p, correction) for j, p in running.items() if j in estimates]
    left += [estimates[j].seconds * correction for j in pending if j in estimates]
    if not left:
        return None
    return schedule_seconds(left, slots), correction
