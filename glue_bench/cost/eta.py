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
    startup_seconds: float = 0.0
    """Of which the fixed cost (start-up, saving); the rest is evaluation and prediction."""

    @property
    def eval_seconds(self) -> float:
        """Every dev evaluation, the final dev prediction and the test prediction."""
        return max(0.0, self.seconds - self.train_seconds - self.startup_seconds)

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
                                       work.epochs, price.startup_seconds)
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


def share_done(progress: dict, epochs: int) -> float:
    """The share of a running job's epochs done, from its latest progress record (0 before the first)."""
    epoch = progress.get("epoch")
    return min(1.0, float(epoch) / epochs) if isinstance(epoch, int | float) and epochs else 0.0


def speed_correction(predicted: list[float], reported: list[float]) -> float:
    """How much slower (> 1) or faster than estimated the jobs run: the median of predicted / reported
    training examples per second over the jobs that report one (1 when none does)."""
    ratios = [p / r for p, r in zip(predicted, reported, strict=True) if p > 0 and r and r > 0]
    return statistics.median(ratios) if ratios else 1.0


def remaining_seconds(estimate: JobEstimate, progress: dict, train_correction: float,
                      rest_correction: float) -> float:
    """What is left of a running job: its training steps not yet done (scaled by the training correction), and
    its evaluations not yet done, the final dev and test prediction and the saving (scaled by the correction of
    the other phases); its start-up is behind it."""
    done = share_done(progress, estimate.epochs)
    # one dev pass per epoch is behind it with each epoch; the final dev and test prediction are all ahead
    evals_left = estimate.eval_seconds * (1.0 - done * estimate.epochs / (estimate.epochs + 1))
    return estimate.train_seconds * (1.0 - done) * train_correction + evals_left * rest_correction


def job_correction(estimates: dict[str, JobEstimate], finished: dict[str, float]) -> float | None:
    """How much longer (> 1) than estimated whole jobs took: the median of actual / estimated seconds over the
    finished jobs (every phase: evaluation, prediction, saving and wandb too). None before any finished."""
    ratios = [seconds / estimates[j].seconds for j, seconds in finished.items()
              if j in estimates and estimates[j].seconds > 0 and seconds > 0]
    return statistics.median(ratios) if ratios else None


def sweep_eta(estimates: dict[str, JobEstimate], running: dict[str, dict], pending: list[str],
              slots: int, finished: dict[str, float] | None = None) -> tuple[float, float] | None:
    """(seconds left, correction) of a sweep from its job estimates, the running jobs' latest progress records
    (`latest_training_record`) and the finished jobs' actual seconds. Training is corrected by the throughput the
    running jobs report; the other phases (evaluation, prediction, saving, wandb), which that throughput does not
    see and which dominate small jobs, by the finished jobs' actual / estimated seconds (until one finishes, by
    the training correction). None when no job left has an estimate."""
    reported = [(estimates[j].examples_per_s, p.get("train/examples_per_s")) for j, p in running.items()
                if j in estimates]
    train = speed_correction([a for a, _ in reported], [b for _, b in reported])
    whole = job_correction(estimates, finished or {})
    rest = whole if whole is not None else train
    left = [remaining_seconds(estimates[j], p, train, rest) for j, p in running.items() if j in estimates]
    left += [estimates[j].seconds * (whole if whole is not None else train) for j in pending if j in estimates]
    if not left:
        return None
    return schedule_seconds(left, slots), (whole if whole is not None else train)


def progress_eta(running: dict[str, tuple[float, float]], durations: list[float], pending: int,
                 slots: int) -> float | None:
    """The ETA without estimates: a running job's time left from its elapsed seconds and the share of its work
    done ((elapsed, share) per job); a pending job takes the mean duration of the finished jobs, else the mean of
    the running jobs' projected durations. None when there is nothing to go by."""
    projected = {j: elapsed / share for j, (elapsed, share) in running.items() if share > 0.02}
    mean = statistics.fmean(durations) if durations else \
        (statistics.fmean(projected.values()) if projected else None)
    if mean is None:
        return None
    left = [projected[j] - elapsed if j in projected else max(0.0, mean - elapsed)
            for j, (elapsed, _) in running.items()]
    left += [mean] * pending
    return schedule_seconds([max(0.0, x) for x in left], slots) if left else None
