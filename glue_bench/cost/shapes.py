"""The prepared model's shape, for pricing: trainable and frozen matmul weights, parameter counts and size.

The model is built on torch's meta device by training's own code
(`glue_bench.train.models.meta_model_shape`: no weights, no memory), the job's method is applied and
`requires_grad` is read on its Linear layers, so every method is priced the same way. The counts are kept in
`<cache>/structures.json`, so `status` and the runner's ETA read them without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from glue_bench.cost.arithmetic import Structure
from glue_bench.model_source import model_identity
from glue_bench.results.job_folder import atomic_write_json, read_json
from glue_bench.spec import JobSpec
from glue_bench.tasks import TASKS

STRUCTURES_FILE = "structures.json"
# Spec fields that leave the prepared model's shape alone: the rest (method, bottleneck, rank, ...) enter the
# key under which a structure is kept, so a new method's fields count without being listed here.
NOT_STRUCTURAL = frozenset({
    "task", "model", "data", "learning_rate", "batch_size", "epochs", "max_seq_length", "warmup_ratio",
    "weight_decay", "max_grad_norm", "seed", "data_seed", "max_train_samples", "max_eval_samples", "predict_test",
    "group_by_length", "eval_every_steps", "precision", "zero_stage", "num_gpus", "num_procs", "micro_batch_size",
    "log_every_steps", "keep_checkpoints", "tags", "wandb", "wandb_project", "wandb_entity", "wandb_group",
    "adapter_init_std", "non_linearity", "lora_dropout", "alpha", "heldout_train_rows", "prune", "prune_reduction",
    "prune_min_epochs"})


def structure_key(spec: JobSpec) -> str:
    """What the prepared model's shape depends on: the model, the head's size and the method's own fields."""
    fields = {k: v for k, v in spec.to_dict().items() if k not in NOT_STRUCTURAL}
    return json.dumps({"model": model_identity(spec.model), "labels": TASKS[spec.task].num_labels, **fields},
                      sort_keys=True, default=str)


def build_structure(spec: JobSpec) -> Structure:
    """The structure of `spec`'s prepared model, built on the meta device by training's own model and method
    code (no weights are read or allocated)."""
    from glue_bench.train.models import meta_model_shape

    return Structure.from_dict(meta_model_shape(spec))


class Structures:
    """Structures by `structure_key`, kept in `<cache>/structures.json`; built with torch only when allowed."""

    def __init__(self, cache_root: Path, build: bool = True):
        self.path = Path(cache_root) / STRUCTURES_FILE
        self.build = build
        stored = read_json(self.path)
        self.known: dict[str, Structure] = {}
        if isinstance(stored, dict):
            for key, value in stored.items():
                try:
                    self.known[key] = Structure.from_dict(value)
                except (TypeError, KeyError, ValueError):
                    continue
        self.changed = False

    def get(self, spec: JobSpec) -> Structure | None:
        key = structure_key(spec)
        if self.build and (key not in self.known or self.known[key].head_trainable < 0):
            self.known[key] = build_structure(spec)
            self.changed = True
        return self.known.get(key)

    def save(self) -> None:
        if self.changed:
            atomic_write_json(self.path, {k: v.to_dict() for k, v in self.known.items()})
            self.changed = False
