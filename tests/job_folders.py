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


def write_curve_job(root: Path, spec: JobSpec, curve: list[float], predictions: list[list[int]] | None = None,
                    labels: list[int] | None = None, start: float = 0.0, epoch_seconds: float = 10.0,
                    halves: list[tuple[float, float]] | None = None, pruned: dict | None = None,
                    world_size: int = 1) -> Path:
    """A finished RTE job with a recorded dev curve: evaluation k (after k + 1 epochs, at step 10 (k + 1), at time
    start + epoch_seconds (k + 1)) scored curve[k], with the half a / half b scores of `halves` and the dev
    predictions of `predictions[k]` kept; the best evaluation's predictions are the dev predictions file."""
    import json

    import numpy as np

    job = JobDir(root / spec.job_id)
    job.write_spec(spec)
    labels = labels if labels is not None else [1, 0, 1, 0]
    best = max(range(len(curve)), key=lambda k: (curve[k], -k))
    lines = []
    for k, score in enumerate(curve):
        record = {"step": 10 * (k + 1), "epoch": float(k + 1), "eval/task_score": score, "eval/accuracy": score,
                  "time": start + epoch_seconds * (k + 1)}
        if halves is not None:
            a, b = halves[k]
            record.update({"eval/half_a/task_score": a, "eval/half_a/accuracy": a, "eval/half_b/task_score": b,
                           "eval/half_b/accuracy": b})
        lines.append(json.dumps(record))
        if predictions is not None:
            path = job.eval_prediction_path("dev", 10 * (k + 1))
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.asarray(predictions[k], dtype=np.int16))
    job.history_path.write_text("\n".join(lines) + "\n")
    kept = predictions[best] if predictions is not None else [1] * len(labels)
    rows = [f"{i}\t{p}\t{y}" for i, (p, y) in enumerate(zip(kept, labels, strict=True))]
    files = {"dev": write_prediction_file(job.prediction_path("dev"), "idx\tprediction\tlabel", rows)}
    atomic_write_json(job.metrics_path, {
        "schema_version": 1, "job_id": spec.job_id, "task": spec.task, "method": spec.method,
        "dev": {"dev": {"accuracy": curve[best]}}, "task_score": curve[best], "best_step": 10 * (best + 1),
        "predictions": {"dev": len(labels)}, "prediction_files": files,
        "parameters": {"trainable": 10, "base_model": 10}, "train_label_distribution": {"counts": [2, 2]},
        "wall_seconds": epoch_seconds * len(curve), "distributed": {"world_size": world_size}, "pruned": pruned,
        "spec": spec.to_dict()})
    return job.path
