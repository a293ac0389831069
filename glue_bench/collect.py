"""Result folders -> typed records (no torch). A failed or half-written job never crashes collection."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.results import is_done, load_metrics, read_json


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
    """full, houlsby or layernorm_head."""
    bottleneck: int | None
    """Houlsby adapter size."""
    learning_rate: float
    """Peak learning rate."""
    epochs: int
    """Training epochs."""
    seed: int
    """Seed."""
    setting: tuple
    """Every other hyperparameter that defines the configuration (selection compares these)."""
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

    @property
    def config(self) -> str:
        """Row label of the method configuration: `full`, `houlsby m=64`, ..."""
        return f"houlsby m={self.bottleneck}" if self.method == "houlsby" else self.method


SETTING_FIELDS = ("batch_size", "max_seq_length", "warmup_ratio", "weight_decay", "non_linearity",
                  "adapter_init_std", "max_train_samples", "precision", "model")


def collect(results_dir: Path) -> list[JobRecord]:
    """A record for every job folder (done, failed or unfinished) under results/<sweep>/."""
    records = []
    for folder in sorted(Path(results_dir).iterdir()) if Path(results_dir).is_dir() else []:
        spec = read_json(folder / "spec.json")
        if not folder.is_dir() or ".old-" in folder.name or not isinstance(spec, dict):
            continue
        try:
            records.append(_record(folder, spec))
        except (KeyError, TypeError, ValueError):
            continue  # not a job folder we can read: skip it rather than fail the report
    return records


def _record(folder: Path, spec: dict) -> JobRecord:
    done = is_done(folder)
    metrics = load_metrics(folder) if done else None
    error = read_json(folder / "error.json") if not done else None
    common = {
        "job_id": folder.name, "path": folder, "task": spec["task"], "method": spec.get("method", "full"),
        "bottleneck": spec.get("bottleneck"), "learning_rate": float(spec.get("learning_rate", 2e-5)),
        "epochs": int(spec.get("epochs", 3)), "seed": int(spec.get("seed", 42)),
        "setting": tuple((k, spec.get(k)) for k in SETTING_FIELDS), "done": done,
    }
    if metrics is None:
        message = None
        if isinstance(error, dict):
            message = f"{error.get('type')}: {error.get('message')}".splitlines()[0][:200]
        return JobRecord(**common, error=message)
    params = metrics.get("parameters", {})
    return JobRecord(**common, dev=metrics["dev"], task_score=metrics["task_score"],
                     trainable=params.get("trainable"), base_model=params.get("base_model"),
                     predictions=metrics["predictions"],
                     train_label_distribution=metrics.get("train_label_distribution", {}))


def read_dev_labels(record: JobRecord, split: str) -> list[float]:
    """Dev labels from a job's dev predictions file (third column)."""
    path = record.path / "predictions" / f"{split}.tsv"
    lines = path.read_text().splitlines()[1:]
    return [float(line.split("\t")[2]) for line in lines if line.strip()]
