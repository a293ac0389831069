"""The prepared model's shape, for pricing: trainable and frozen matmul weights, parameter counts and size.

The model is built on torch's meta device (no weights, no memory), the job's method is applied
(`glue_bench.methods.apply_method`) and `requires_grad` is read on its Linear layers, so every method is priced
the same way. The counts are kept in `<cache>/structures.json`, so `status` and the runner's ETA read them
without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.estimate import Structure
from glue_bench.model_source import model_identity
from glue_bench.results import atomic_write_json, read_json
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
    "adapter_init_std", "non_linearity", "lora_dropout", "alpha"})


def structure_key(spec: JobSpec) -> str:
    """What the prepared model's shape depends on: the model, the head's size and the method's own fields."""
    fields = {k: v for k, v in spec.to_dict().items() if k not in NOT_STRUCTURAL}
    return json.dumps({"model": model_identity(spec.model), "labels": TASKS[spec.task].num_labels, **fields},
                      sort_keys=True, default=str)


# Sizes of common hub models, for pricing one whose config is not on this machine (offline).
KNOWN_CONFIGS = {
    "bert-base-uncased": ("bert", 30522, 768, 12, 12, 3072), "bert-base-cased": ("bert", 28996, 768, 12, 12, 3072),
    "bert-large-uncased": ("bert", 30522, 1024, 24, 16, 4096), "bert-large-cased": ("bert", 28996, 1024, 24, 16, 4096),
    "roberta-base": ("roberta", 50265, 768, 12, 12, 3072), "roberta-large": ("roberta", 50265, 1024, 24, 16, 4096),
}


def model_config(model: str, num_labels: int = 2):
    """The model's config: from its folder or the local hub cache, else a known hub id's published sizes."""
    from transformers import AutoConfig, BertConfig, RobertaConfig

    from glue_bench.model_source import go_offline_without_hub, resolve_model

    path = resolve_model(model)
    go_offline_without_hub(path)
    try:
        return AutoConfig.from_pretrained(path, num_labels=num_labels)
    except (OSError, ValueError) as e:
        known = KNOWN_CONFIGS.get(model.split("/")[-1])
        if known is None:
            raise GlueBenchError(f"cannot read the config of {model!r} ({str(e).splitlines()[0]}); give a model "
                                 "folder") from None
        kind, vocab, hidden, layers, heads, ffn = known
        cls, extra = (RobertaConfig, {"max_position_embeddings": 514, "type_vocab_size": 1}) if kind == "roberta" \
            else (BertConfig, {})
        return cls(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                   intermediate_size=ffn, num_labels=num_labels, **extra)


def count_structure(model) -> Structure:
    """Trainable and frozen Linear weights of a prepared model (from `requires_grad`), and its shape."""
    from torch import nn

    trainable = frozen = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if module.weight.requires_grad:
                trainable += module.weight.numel()
            else:
                frozen += module.weight.numel()
    config = model.config
    return Structure(trainable_matmul=trainable, frozen_matmul=frozen,
                     trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
                     total=sum(p.numel() for p in model.parameters()), layers=config.num_hidden_layers,
                     hidden=config.hidden_size)


def build_structure(spec: JobSpec) -> Structure:
    """The structure of `spec`'s prepared model, built on the meta device (no weights are read or allocated)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from glue_bench.methods import apply_method

    config = model_config(spec.model, TASKS[spec.task].num_labels)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
        apply_method(model, spec)
    return count_structure(model)


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
        if key not in self.known and self.build:
            self.known[key] = build_structure(spec)
            self.changed = True
        return self.known.get(key)

    def save(self) -> None:
        if self.changed:
            atomic_write_json(self.path, {k: v.to_dict() for k, v in self.known.items()})
            self.changed = False
