"""metrics.json of a finished job (schema in docs/results.md), built from what the recipe collected."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import numpy as np

from glue_bench.metrics import task_score
from glue_bench.provenance import git_commit, library_versions, model_provenance
from glue_bench.results import SCHEMA_VERSION

if TYPE_CHECKING:
    from glue_bench.train import Job


def metrics_record(job: Job, final_dev: dict, files: dict, frozen_after: str, digests: list) -> dict:
    """metrics.json (schema in docs/results.md)."""
    spec, task, train = job.spec, job.task, job.train
    label_counts = np.bincount(train.labels.astype(np.int64), minlength=task.num_labels) \
        if not task.is_regression else None
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": spec.job_id,
        "task": task.name,
        "method": spec.method,
        "bottleneck": spec.bottleneck,
        "dev": final_dev,
        "task_score": task_score(task, final_dev),
        "best_epoch": job.best["epoch"],
        "best_step": job.best["step"],
        "global_steps": job.global_step,
        "parameters": job.counts.to_dict(),
        "train_examples": len(train),
        "eval_examples": {split: len(e) for split, e in job.dev.items()},
        "train_label_distribution": (
            {"counts": label_counts.tolist(), "names": list(task.label_names)} if label_counts is not None
            else {"mean": float(train.labels.mean()), "std": float(train.labels.std())}),
        "predictions": {split: f["rows"] for split, f in files.items()},
        "prediction_files": files,
        "distributed": {"world_size": job.run.world, "eval_rows_per_rank": job.eval_rows,
                        "micro_batch_size": job.micro, "gradient_accumulation_steps": job.accum,
                        "zero_stage": job.ds_config["zero_optimization"]["stage"], "precision": job.precision,
                        "device": str(job.run.device.type), "param_sums_per_rank": digests},
        "frozen_parameters_sha256": frozen_after,
        "cache": {"hits": job.cache.hits, "misses": job.cache.misses},
        "provenance": {
            "data": {"source": "hub" if job.source == "hub" else "glue_data",
                     **({"folder": job.source} if job.source != "hub" else {}),
                     "train": job.train_full.source,
                     **{split: e.source for split, e in {**job.dev, **job.test}.items()}},
            "model": model_provenance(spec.model),
            "versions": library_versions(),
            "git_commit": git_commit(),
            "host": socket.gethostname(),
        },
        "wall_seconds": time.time() - job.started,
        "spec": spec.to_dict(),
    }
