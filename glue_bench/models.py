"""Load a pretrained encoder with a task head, and its tokenizer, from a hub id or a folder."""

from __future__ import annotations

import logging

from glue_bench.errors import GlueBenchError
from glue_bench.model_source import go_offline_without_hub, resolve_model
from glue_bench.tasks import Task

log = logging.getLogger(__name__)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    path = resolve_model(model)
    go_offline_without_hub(path)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise GlueBenchError(f"cannot load the tokenizer of {model!r}: {_first_line(e)}") from None


def load_model(model: str, task: Task):
    """A sequence-classification model for `task` on top of the pretrained encoder `model`."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve_model(model)
    go_offline_without_hub(path)
    labels = task.label_names or ("score",)
    try:
        config = AutoConfig.from_pretrained(
            path, num_labels=task.num_labels,
            problem_type="regression" if task.is_regression else "single_label_classification",
            id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
        )
        # fp32 whatever the checkpoint holds: DeepSpeed casts for bf16/fp16 and keeps fp32 master weights
        return AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise GlueBenchError(
            f"cannot load model {model!r}: {_first_line(e)} (no local folder of that name, and the hub "
            "is unreachable or has no such model)"
        ) from None
