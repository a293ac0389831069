"""The two training loops under test, timed the same way: W warm-up steps, then N timed steps on the same
examples, batch 32, max length 128, no evaluation, saving or logging inside the timed region."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _spec(task: str, method: str, rows: int, data: Path, lr: float):
    from glue_bench.spec import JobSpec

    return JobSpec(task=task, model=MODEL, method=method, bottleneck=64 if method == "houlsby" else None,
                   data=str(data), learning_rate=lr, batch_size=32, max_seq_length=128, max_train_samples=rows,
                   epochs=1, wandb="disabled")


def glue_bench_loop(task: str, method: str, rows: int, steps: int, warmup: int, data: Path) -> dict:
    """glue-bench's own loop (`train.train_step` under DeepSpeed), length-grouped batches, dynamic padding."""
    import deepspeed
    import torch
    from transformers import DataCollatorWithPadding

    from glue_bench.data import TokenCache, resolve_data_source, subset_rows, train_batches
    from glue_bench.methods import apply_method
    from glue_bench.models import load_model, load_tokenizer
    from glue_bench.tasks import get_task
    from glue_bench.train import (
        Run,
        build_deepspeed_config,
        linear_schedule,
        optimizer_groups,
        seed_everything,
        train_step,
    )

    spec = _spec(task, method, rows, data, 1e-3 if method == "houlsby" else 5e-5)
    run = Run(spec)
    seed_everything(0)
    task_info = get_task(task)
    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL, task_info)
    counts = apply_method(model, spec)
    cache = TokenCache()
    full = cache.encoded(task_info, "train", resolve_data_source(spec.data), tokenizer, 128)
    train = full.select(subset_rows(len(full), rows, 0))
    batches = train_batches(train.lengths, 32, 0, 0, True)[: warmup + steps]
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.01), lr=spec.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(2, warmup + steps))
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                      config=build_deepspeed_config(spec, 1, "fp32"))
    collator = DataCollatorWithPadding(tokenizer)
    engine.train()
    for b in batches[:warmup]:
        train_step(engine, train, b, run, 1, collator)
    start = time.perf_counter()
    loss = 0.0
    for b in batches[warmup:]:
        loss = loss + train_step(engine, train, b, run, 1, collator)[0]
    float(loss)  # one host sync at the end
    seconds = time.perf_counter() - start
    timed = np.concatenate(batches[warmup:])
    tokens = int(train.lengths[timed].sum())
    padded = int(sum(train.lengths[b].max() * len(b) for b in batches[warmup:]))
    return {"seconds": seconds, "examples": len(timed), "tokens": tokens, "padded_tokens": padded,
            "trainable": counts.trainable, "total": counts.total, "steps": steps}


def trainer_loop(task: str, rows: int, steps: int, warmup: int, data: Path, tuned: bool) -> dict:
    """The Hugging Face Trainer as run_glue drives it: padding to 128 (default) or, tuned, dynamic padding
    with length-grouped sampling. Full fine-tuning, the same examples, batch and number of steps."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from glue_bench.data import load_split, subset_rows
    from glue_bench.models import load_model, load_tokenizer
    from glue_bench.tasks import get_task

    task_info = get_task(task)
    tokenizer = load_tokenizer(MODEL)
    model = load_model(MODEL, task_info)
    raw = load_split(task_info, "train", str(data))
    keep = subset_rows(len(raw), rows, 0)
    texts = [[raw.columns[f][i] for i in keep] for f in task_info.text_fields]
    enc = tokenizer(*texts, truncation=True, max_length=128, padding=False if tuned else "max_length")
    lengths = np.array([sum(m) for m in tokenizer(*texts, truncation=True, max_length=128)["attention_mask"]])
    columns = {k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc}
    columns["labels"] = [raw.columns["label"][i] for i in keep]
    dataset = datasets.Dataset.from_dict(columns)
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                marks["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            marks["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=32, max_steps=warmup + steps, learning_rate=5e-5,
            warmup_steps=max(1, (warmup + steps) // 10),
            weight_decay=0.01, logging_strategy="no", save_strategy="no", eval_strategy="no",
            report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True, max_grad_norm=1.0,
            **length_grouping(tuned))
        collator = DataCollatorWithPadding(tokenizer) if tuned else default_data_collator
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                callbacks=[Clock()]).train()
    examples = steps * 32
    return {"seconds": marks["end"] - marks["start"], "examples": examples,
            "tokens": int(round(examples * lengths.mean())),  # expected non-pad tokens of the sampled rows
            "steps": steps}


def length_grouping(on: bool) -> dict:
    """Length-grouped sampling: `group_by_length` before transformers 5, `train_sampling_strategy` after."""
    import inspect

    from transformers import TrainingArguments

    if "group_by_length" in inspect.signature(TrainingArguments.__init__).parameters:
        return {"group_by_length": on}
    return {"train_sampling_strategy": "group_by_length" if on else "random"}


def matmul_flops(n: int = 2048, reps: int = 10) -> float:
    """Dense fp32 matmul FLOP/s on this machine (best of `reps`)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def ensure_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_MODE", "disabled")
