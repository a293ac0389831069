"""Result folders -> typed records (no torch). A failed or half-written job never crashes collection."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import MethodConfig
from glue_bench.results.job_folder import JobDir, metrics_complete
from glue_bench.spec import JobSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """One job as the report sees it."""

    job_id: str
    """Job id (the folder name)."""
    path: Path
    """The job's results folder."""
    task: str
    """GLUE task."""
    method: str
    """The method family (`full`, `houlsby`, `lora`, ...)."""
    bottleneck: int | None
    """Adapter size (houlsby, pfeiffer)."""
    learning_rate: float
    """Peak learning rate."""
    epochs: int
    """Training epochs."""
    seed: int
    """Seed."""
    setting: str
    """`JobSpec.setting_key`: everything in the job id but the seed (seeds of one setting are averaged)."""
    done: bool
    """Whether the job is done (`results.is_done`)."""
    dev: dict[str, dict[str, float]] = field(default_factory=dict)
    """Dev metrics per split, as in metrics.json."""
    task_score: float | None = None
    """The task score (0..1)."""
    trainable: int | None = None
    """Trainable parameters."""
    base_model: int | None = None
    """Parameters of the base model."""
    predictions: dict[str, int] = field(default_factory=dict)
    """Prediction files and their rows."""
    train_label_distribution: dict = field(default_factory=dict)
    """Train label counts (or mean/std for STS-B)."""
    error: str | None = None
    """One-line error of a failed job."""
    method_config: MethodConfig | None = None
    """The family and its structural parameters (None: built from `method` and `bottleneck`)."""
    head: int | None = None
    """Parameters of the task head (outside the base encoder), counted before the method."""
    best_step: int | None = None
    """The optimizer step of the best dev evaluation (its weights made the dev predictions file)."""
    evaluations: tuple[dict, ...] = ()
    """Every dev evaluation of the job, from history.jsonl (`JobDir.evaluations`), by step."""
    pruned: dict | None = None
    """Where ASHA stopped the job (metrics.json `pruned`); a pruned job is kept out of selection."""
    wall_seconds: float | None = None
    """The job's wall-clock seconds (its last process: metrics.json `wall_seconds`)."""
    world_size: int = 1
    """Devices (GPUs, or CPU processes) the job ran on."""
    reported_score: float | None = None
    """The task score a protocol reports (`report.protocols`; None: `task_score`, which also chooses)."""
    chosen_step: int | None = None
    """The step of the evaluation a protocol scored (None: `best_step`)."""
    example_half: str | None = None
    """The half of dev the protocol reports on (`b` under `held-out`; None: all of dev)."""
    unscored: bool = False
    """Done, but the protocol could not score it (it did not record what the protocol needs): counted, not selected."""

    @property
    def score(self) -> float | None:
        """The task score the report shows for this job under its protocol."""
        return self.task_score if self.reported_score is None else self.reported_score

    def __post_init__(self) -> None:
        if self.method_config is None:
            params = (("bottleneck", self.bottleneck),) if self.bottleneck is not None else ()
            object.__setattr__(self, "method_config", MethodConfig(self.method, params))

    @property
    def config(self) -> str:
        """Row label of the method configuration: `full`, `houlsby m=64`, `lora r=8 a=16`, ..."""
        return self.method_config.label

    @property
    def budget_parameters(self) -> int | None:
        """Trainable parameters without the task head (every method trains a head): what budgets compare."""
        if self.trainable is None:
            return None
        return self.trainable - (self.head or 0)


def collect(results_dir: Path, unreadable: dict[str, str] | None = None) -> list[JobRecord]:
    """A record for every job folder (done, failed or unfinished) under results/<sweep>/; folders whose
    spec.json cannot be read go into `unreadable` (folder -> why) when it is given."""
    records: dict[str, JobRecord] = {}
    for folder in sorted(Path(results_dir).iterdir()) if Path(results_dir).is_dir() else []:
        if not folder.is_dir() or ".old-" in folder.name:
            continue
        try:
            spec = JobDir(folder).read_spec()
        except GlueBenchError as e:  # not a job folder we can read: name it rather than fail the report
            if unreadable is not None:
                unreadable[folder.name] = f"spec.json {str(e).split(': ', 1)[-1]}"
            continue
        if spec is None:
            continue
        record = _record(JobDir(folder), spec)
        # a copy of a job's folder is the same job, not another seed: keep the one named by its id (or done)
        seen = records.get(spec.job_id)
        if seen is None or (record.done, folder.name == spec.job_id) > (seen.done, seen.path.name == spec.job_id):
            records[spec.job_id] = record
    return list(records.values())


def _record(job: JobDir, spec: JobSpec) -> JobRecord:
    metrics = job.metrics()
    done = metrics_complete(job.path, metrics)
    common = {
        "job_id": job.name, "path": job.path, "task": spec.task, "method": spec.method,
        "bottleneck": spec.bottleneck, "learning_rate": spec.learning_rate, "epochs": spec.epochs,
        "seed": spec.seed, "setting": spec.setting_key, "done": done, "method_config": MethodConfig.of(spec),
    }
    if not done or metrics is None:
        error = job.error_summary()
        if error is None:  # finished once, but its record or its files are not whole: the one verdict
            problem = job.problem()
            error = f"{problem} (glue-bench run reruns it)" if problem else None
        return JobRecord(**common, error=error)
    params = metrics.get("parameters", {})
    head = params.get("head")
    if head is None and spec.method == "full" and params.get("trainable") and params.get("base_model"):
        head = params["trainable"] - params["base_model"]  # results written before the head was recorded
    return JobRecord(**common, dev=metrics["dev"], task_score=metrics["task_score"],
                     trainable=params.get("trainable"), base_model=params.get("base_model"), head=head,
                     predictions=metrics["predictions"],
                     train_label_distribution=metrics.get("train_label_distribution", {}),
                     best_step=metrics.get("best_step"), evaluations=tuple(job.evaluations()),
                     pruned=metrics.get("pruned"), wall_seconds=metrics.get("wall_seconds"),
                     world_size=int((metrics.get("distributed") or {}).get("world_size") or 1))


def read_dev_labels(record: JobRecord, split: str) -> list[float]:
    """Dev labels from a job's dev predictions file (third column)."""
    return [row[2] for row in _dev_rows(record, split)]


def _dev_rows(record: JobRecord, split: str) -> list[tuple[float, ...]]:
    path = JobDir(record.path).prediction_path(split)
    lines = path.read_text().splitlines()[1:]
    return [tuple(float(v) for v in line.split("\t")) for line in lines if line.strip()]


def read_dev_predictions(record: JobRecord, split: str, step: int | None):
    """(predictions, labels) of one dev split, in idx order, as numpy arrays: those of the evaluation at `step`
    (kept by every job since evaluations kept their predictions), or the dev predictions file when `step` is the
    best step; None when neither is there."""
    import numpy as np

    rows = _dev_rows(record, split)
    labels = np.array([r[2] for r in rows])
    if step is None or step == record.best_step:
        return np.array([r[1] for r in rows]), labels
    path = JobDir(record.path).eval_prediction_path(split, step)
    if not path.is_file():
        return None
    predictions = np.load(path)
    return (predictions, labels) if len(predictions) == len(labels) else None
