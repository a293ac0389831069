"""Load a pretrained encoder with a task head, and its tokenizer, from a hub id or a folder."""

from __future__ import annotations

import logging

from glue_bench.errors import GlueBenchError
from glue_bench.model_source import go_offline_without_hub, resolve_model
from glue_bench.spec import JobSpec
from glue_bench.tasks import TASKS, Task

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


def model_config(model: str, num_labels: int = 2):
    """The model's config: from its folder or the local hub cache, else a built-in hub id's published values
    (`glue_bench.encoders.BUILT_IN_CONFIGS`)."""
    from transformers import AutoConfig

    from glue_bench.encoders import built_in_config

    path = resolve_model(model)
    go_offline_without_hub(path)
    try:
        return AutoConfig.from_pretrained(path, num_labels=num_labels)
    except (OSError, ValueError) as e:
        known = built_in_config(model)
        if known is None:
            raise GlueBenchError(f"cannot read the config of {model!r} ({str(e).splitlines()[0]}); give a model "
                                 "folder") from None
        values = dict(known)
        return AutoConfig.for_model(values.pop("model_type"), num_labels=num_labels, **values)


def count_shape(model) -> dict[str, int]:
    """Trainable and frozen Linear weights of a prepared model (from `requires_grad`), and its shape: the fields
    of `glue_bench.cost.arithmetic.Structure`."""
    from torch import nn

    trainable = frozen = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if module.weight.requires_grad:
                trainable += module.weight.numel()
            else:
                frozen += module.weight.numel()
    from glue_bench.train.methods.common import head_parameters

    config = model.config
    return {"trainable_matmul": trainable, "frozen_matmul": frozen,
            "head_trainable": sum(p.numel() for p in head_parameters(model) if p.requires_grad),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in model.parameters()), "layers": config.num_hidden_layers,
            "hidden": config.hidden_size}


def meta_model_shape(spec: JobSpec) -> dict[str, int]:
    """`count_shape` of `spec`'s prepared model, built on the meta device (no weights are read or allocated)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from glue_bench.train.methods import apply_method

    config = model_config(spec.model, TASKS[spec.task].num_labels)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
        apply_method(model, spec)
    return count_shape(model)
