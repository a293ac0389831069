"""Job folders written by hand, as train writes them, for the tests of the job folder, the report, submission,
status and the executors; and `rte`, the job spec most of them hold."""

from __future__ import annotations

from pathlib import Path

from glue_bench.results.job_folder import JobDir, atomic_write_json, write_prediction_file
from glue_bench.spec import JobSpec


def rte(**kw) -> JobSpec:
    return JobSpec(task="rte", model="m", predict_test=False, **kw)


def write_done_job(root: Path, spec: JobSpec, score: float, rows: int = 3, fingerprints: bool = True) -> Path:
    """A finished job's folder as train writes it (dev predictions only)."""
    job = JobDir(root / spec.job_id)
    job.write_spec(spec)
    lines = [f"{i}\t1\t1" for i in range(rows)]
    files = {"dev": write_prediction_file(job.prediction_path("dev"), "idx\tprediction\tlabel", lines)}
    metrics = {"schema_version": 1, "job_id": spec.job_id, "task": spec.task, "method": spec.method,
               "dev": {"dev": {"accuracy": score}}, "task_score": score, "predictions": {"dev": rows},
               "parameters": {"trainable": 10, "base_model": 10}, "spec": spec.to_dict()}
    if fingerprints:
        metrics["prediction_files"] = files
    atomic_write_json(job.metrics_path, metrics)
    return job.path


def write_job(folder: Path, task: str, score: float, failed: bool = False, **spec) -> None:
    """A job folder named `folder` with a hand-written spec.json: done with two dev rows, or failed."""
    folder.mkdir(parents=True)
    atomic_write_json(folder / "spec.json", {"task": task, "model": "m", "method": "full", "seed": 1,
                                             "learning_rate": 3e-5, "predict_test": False, **spec})
    if failed:
        atomic_write_json(folder / "error.json", {"type": "RuntimeError", "message": "boom", "attempt": 1})
        return
    (folder / "predictions").mkdir()
    (folder / "predictions" / "dev.tsv").write_text("idx\tprediction\tlabel\n0\t1\t1\n1\t0\t1\n")
    atomic_write_json(folder / "metrics.json", {
        "schema_version": 1, "job_id": folder.name, "task": task, "method": "full",
        "dev": {"dev": {"accuracy": score}}, "task_score": score, "predictions": {"dev": 2},
        "parameters": {"trainable": 10, "base_model": 10}, "train_label_distribution": {"counts": [1, 3]},
        "spec": {"predict_test": False}})
