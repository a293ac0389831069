"""A finished job's weights: saved and loaded by one pair of functions, with one rule for what is saved.

Full fine-tuning saves the whole model (`model/`, `save_pretrained` format, with its tokenizer); every other
method saves only its trainable tensors (`adapter.safetensors`), loaded onto a fresh base model with the method
applied, and peft's methods also their own folder (`peft/`). Where each lives is the job folder's business
(`JobDir`)."""

from __future__ import annotations

from glue_bench.errors import GlueBenchError
from glue_bench.results.job_folder import JobDir, atomic_write_bytes, follow_umask
from glue_bench.spec import JobSpec
from glue_bench.tasks import Task


def saves_whole_model(spec: JobSpec) -> bool:
    """Whether a job keeps its whole model (every parameter trains) rather than its trainable tensors."""
    return spec.method == "full"


def save_weights(folder: JobDir, spec: JobSpec, module, tokenizer, tensors: dict) -> None:
    """The best dev weights `tensors` (already loaded into `module`) of a finished job, into `folder` (peft's
    folder is written on a fresh copy of the base model with the task's head)."""
    if saves_whole_model(spec):
        module.save_pretrained(folder.model_dir, safe_serialization=True)
        tokenizer.save_pretrained(folder.model_dir)
        follow_umask(folder.model_dir)
        return
    from safetensors.torch import save

    atomic_write_bytes(folder.adapter_path, save(tensors, metadata={"job_id": spec.job_id, "method": spec.method}))
    if getattr(module, "peft_folder_config", None) is not None:  # peft's methods: also its own folder
        from glue_bench.tasks import get_task
        from glue_bench.train.methods.peft_path import write_peft_folder
        from glue_bench.train.models import load_model

        write_peft_folder(module, spec, folder.peft_dir, tensors, lambda: load_model(spec.model, get_task(spec.task)))
        follow_umask(folder.peft_dir)


def load_weights(folder: JobDir, spec: JobSpec, task: Task):
    """The trained model of a finished job and its tokenizer, as `save_weights` left them."""
    from safetensors.torch import load_file

    from glue_bench.train.checkpoint import load_trainable_state
    from glue_bench.train.methods import apply_method
    from glue_bench.train.models import load_model, load_tokenizer

    if saves_whole_model(spec):
        if not folder.model_dir.is_dir():
            raise GlueBenchError(f"{folder.path} has no {folder.model_dir.name}/: is the job done?")
        return load_model(str(folder.model_dir), task), load_tokenizer(str(folder.model_dir))
    if not folder.adapter_path.is_file():
        raise GlueBenchError(f"{folder.path} has no {folder.adapter_path.name}: is the job done?")
    model = load_model(spec.model, task)
    apply_method(model, spec)
    try:
        load_trainable_state(model, load_file(str(folder.adapter_path)))
    except ValueError as e:
        raise GlueBenchError(f"{folder.adapter_path}: {e}") from None
    return model, load_tokenizer(spec.model)


def load_start(model, spec: JobSpec, own: JobDir) -> dict:
    """`init_from`: put the source job's trained method weights into `model` (the method already applied), the task
    head left as it is (fresh). The source's folder is this job's sibling. Returns what the job records of it."""
    import torch
    from safetensors.torch import load_file

    from glue_bench.train.methods.common import head_parameters

    source = JobDir(own.path.parent / spec.init_from)
    if not source.is_done():
        raise GlueBenchError(f"init_from: the job {spec.init_from} is not done (no metrics.json in {source.path}): "
                             "it runs first; run it, then this job")
    head = {id(p) for p in head_parameters(model)}
    if saves_whole_model(spec):
        from transformers import AutoModel

        tensors = {f"{model.base_model_prefix}.{k}": v for k, v in
                   AutoModel.from_pretrained(str(source.model_dir), dtype=torch.float32).state_dict().items()}
    else:
        tensors = load_file(str(source.adapter_path))
    wanted = {n: p for n, p in model.named_parameters() if p.requires_grad and id(p) not in head}
    missing = sorted(set(wanted) - set(tensors))
    if missing:
        raise GlueBenchError(f"init_from {spec.init_from}: its weights lack {missing[0]} (not the same method "
                             "configuration)")
    with torch.no_grad():
        for name, p in wanted.items():
            p.copy_(tensors[name].to(p.device, p.dtype))
    metrics = source.metrics() or {}
    return {"job": spec.init_from, "task": metrics.get("task"), "task_score": metrics.get("task_score"),
            "tensors": len(wanted)}
