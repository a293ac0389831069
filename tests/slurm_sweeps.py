"""The tiny sweep the Slurm tests submit (one node and two), and the results it finished."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from glue_bench.results.job_folder import is_done


def write_sweep(root: Path, model: Path, data: Path, **changes) -> Path:
    sweep = {"name": "tiny", "model": str(model), "data": str(data), "tasks": ["rte", "mrpc"],
             "methods": {"full": {"learning_rate": 1e-4}, "houlsby": {"bottleneck": 4, "learning_rate": 1e-3}},
             "epochs": 2, "seeds": 1, "batch_size": 16, "max_seq_length": 64, "max_train_samples": 256,
             "max_eval_samples": 32, "predict_test": False, "gpus_per_job": 0, "wandb": {"mode": "disabled"},
             **changes}
    root.mkdir(parents=True, exist_ok=True)
    (root / "tiny.yaml").write_text(yaml.safe_dump(sweep))
    return root


def results(root: Path) -> dict[str, dict]:
    folder = root / "results" / "tiny"
    return {p.name: json.loads((p / "metrics.json").read_text()) for p in folder.iterdir() if is_done(p)}
