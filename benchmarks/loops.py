"""The two training loops under test, timed the same way: W warm-up steps, then N timed steps on the same
examples, batch 32, max length 128, no evaluation, saving or logging inside the timed region.

`Setup` says where they run: the model (hub id or folder), the device (cpu or cuda) and the precision (fp32 or
bf16). On a GPU the clock starts and stops after `torch.cuda.synchronize()`."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Setup:
    model: str = MODEL
    device: str = "cpu"
    precision: str = "fp32"
    deepspeed_bf16: bool = False  # glue-bench loop only: DeepSpeed's bf16 weights instead of autocast
    keep_freed_memory: bool = True  # glue-bench loop only: `runtime.keep_freed_memory`, as jobs do
    fast_dropout: bool = True  # glue-bench loop only, CPU: `dropout.use_fast_dropout`, as jobs do

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


# glue-bench loop variants (`--variant`), each timed as its own loop: what one of glue-bench's choices is worth
VARIANTS = {
    "deepspeed-bf16": {"deepspeed_bf16": True},  # bf16: DeepSpeed's bf16 weights, not torch.autocast
    "glibc-malloc": {"keep_freed_memory": False},  # CPU: glibc's default malloc settings
    "torch-dropout": {"fast_dropout": False},  # CPU: torch's dropout masks
    "torch-cpu": {"keep_freed_memory": False, "fast_dropout": False},  # CPU: neither of the two
}


def _spec(task: str, method: str, rows: int, data: Path, lr: float, setup: Setup):
    from glue_bench.spec import JobSpec

    return JobSpec(task=task, model=setup.model, method=method, bottleneck=64 if method == "houlsby" else None,
                   data=str(data), learning_rate=lr, batch_size=32, max_seq_length=128, max_train_samples=rows,
                   epochs=1, wandb="disabled", num_gpus=1 if setup.device == "cuda" else 0,
                   precision=setup.precision)


def glue_bench_loop(task: str, method: str, rows: int, steps: int, warmup: int, data: Path,
                    setup: Setup = Setup(), profile: bool = False) -> dict:
    """glue-bench's own loop (`engine.train_step` under DeepSpeed), length-grouped batches, dynamic padding."""
    from glue_bench.tasks import get_task
    from glue_bench.train.data import Padding, TokenCache, resolve_data_source, subset_rows, train_batches
    from glue_bench.train.dropout import use_fast_dropout
    from glue_bench.train.engine import build_deepspeed_config, initialize_engine, train_step
    from glue_bench.train.methods import apply_method
    from glue_bench.train.models import load_model, load_tokenizer
    from glue_bench.train.runtime import Run, keep_freed_memory, seed_everything

    spec = _spec(task, method, rows, data, 1e-3 if method == "houlsby" else 5e-5, setup)
    run = Run(spec)
    if setup.keep_freed_memory:
        keep_freed_memory(run.device)  # as `train.main` does
    seed_everything(0)
    task_info = get_task(task)
    tokenizer = load_tokenizer(setup.model)
    cache = TokenCache()
    full = cache.encoded(task_info, "train", resolve_data_source(spec.data), tokenizer, 128)
    train = full.select(subset_rows(len(full), rows, 0))
    batches = train_batches(train.lengths, 32, 0, 0, True)[: warmup + steps]
    rss_before = reset_peak_rss()  # from here on: model, engine, optimizer state, activations
    model = load_model(setup.model, task_info)
    counts = apply_method(model, spec)
    if setup.fast_dropout and run.device.type == "cpu":
        use_fast_dropout(model)  # as `train.main` does
    model.to(run.device)
    ds_config = build_deepspeed_config(spec, run.world, setup.precision)
    if setup.deepspeed_bf16:  # the variant that keeps DeepSpeed's bf16 weights instead of torch.autocast
        ds_config.update({"bf16": {"enabled": True}, "torch_autocast": {"enabled": False}})
    engine = initialize_engine(model, spec, run, ds_config, 2, warmup + steps)
    collator = Padding.for_tokenizer(tokenizer)
    engine.train()
    for b in batches[:warmup]:
        train_step(engine, train, b, run, 1, collator)
    setup.sync()
    profiler = contextlib.nullcontext()
    if profile:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if setup.device == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        profiler = torch.profiler.profile(activities=activities)
    start = time.perf_counter()
    with profiler:
        loss = 0.0
        for b in batches[warmup:]:
            loss = loss + train_step(engine, train, b, run, 1, collator)[0]
        float(loss)  # one host sync at the end
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if setup.device == "cuda" else None
    rss_increase = peak_rss() - rss_before if rss_before is not None else None
    del engine, model
    timed = np.concatenate(batches[warmup:])
    tokens = int(train.lengths[timed].sum())
    padded = int(sum(train.lengths[b].max() * len(b) for b in batches[warmup:]))
    return {"seconds": seconds, "examples": len(timed), "tokens": tokens, "padded_tokens": padded,
            "trainable": counts.trainable, "total": counts.total, "steps": steps, "peak_cuda_bytes": peak,
            "peak_rss_increase": rss_increase,
            **({"profile": profile_table(profiler, setup)} if profile else {})}


def reset_peak_rss() -> int | None:
    """Reset this process's peak RSS (Linux: `5` to /proc/self/clear_refs); the RSS now, or None if not Linux."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_kb("VmRSS") * 1024


def peak_rss() -> int:
    """Peak RSS since the last `reset_peak_rss` (VmHWM), bytes."""
    return _status_kb("VmHWM") * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def profile_table(profiler, setup: Setup, rows: int = 25) -> str:
    """The profiled steps' operators, most self time first (device time on a GPU, CPU time otherwise)."""
    key = "self_device_time_total" if setup.device == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60)


def trainer_loop(task: str, rows: int, steps: int, warmup: int, data: Path, tuned: bool,
                 setup: Setup = Setup()) -> dict:
    """The Hugging Face Trainer as run_glue drives it: random batches padded to 128 (default) or, tuned, dynamic
    padding over length-grouped batches: exactly glue-bench's batches, in its order (a sequential sampler over the
    rows laid out batch by batch), so both loops time the same examples and tokens. Full fine-tuning, batch 32."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from glue_bench.tasks import get_task
    from glue_bench.train.data import load_split, subset_rows, train_batches
    from glue_bench.train.models import load_model, load_tokenizer

    task_info = get_task(task)
    tokenizer = load_tokenizer(setup.model)
    model = load_model(setup.model, task_info)
    raw = load_split(task_info, "train", str(data))
    keep = subset_rows(len(raw), rows, 0)
    texts = [[raw.columns[f][i] for i in keep] for f in task_info.text_fields]
    enc = tokenizer(*texts, truncation=True, max_length=128, padding=False if tuned else "max_length")
    lengths = np.array([sum(m) for m in tokenizer(*texts, truncation=True, max_length=128)["attention_mask"]])
    columns = {k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc}
    columns["labels"] = [raw.columns["label"][i] for i in keep]
    dataset = datasets.Dataset.from_dict(columns)
    if tuned:  # glue-bench's length-grouped batches (`glue_bench_loop`), laid out in order
        batches = train_batches(lengths, 32, 0, 0, True)[: warmup + steps]
        dataset = dataset.select(np.concatenate(batches))
        tokens = int(lengths[np.concatenate(batches[warmup:])].sum())
    else:
        tokens = int(round(steps * 32 * lengths.mean()))  # expected non-pad tokens of the random batches
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                setup.sync()
                marks["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup + steps:
                setup.sync()
                marks["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=32, max_steps=warmup + steps, learning_rate=5e-5,
            warmup_steps=max(1, (warmup + steps) // 10),
            weight_decay=0.01, logging_strategy="no", save_strategy="no", eval_strategy="no",
            report_to=[], use_cpu=setup.device == "cpu", bf16=setup.precision == "bf16", dataloader_num_workers=0,
            seed=0, disable_tqdm=True, max_grad_norm=1.0,
            **length_grouping(tuned))
        collator = DataCollatorWithPadding(tokenizer) if tuned else default_data_collator
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                callbacks=[Clock()]).train()
    return {"seconds": marks["end"] - marks["start"], "examples": steps * 32, "tokens": tokens, "steps": steps}


def length_grouping(on: bool) -> dict:
    """The sampler: random, or (tuned) sequential over rows already laid out in length-grouped batches. Before
    transformers 5 there is no sequential option: then the Trainer's own `group_by_length` sampler."""
    import inspect

    from transformers import TrainingArguments

    if "group_by_length" in inspect.signature(TrainingArguments.__init__).parameters:
        return {"group_by_length": on}
    return {"train_sampling_strategy": "sequential" if on else "random"}


def matmul_flops(setup: Setup = Setup(), reps: int = 10) -> float:
    """Dense matmul FLOP/s of this machine in the setup's device and precision (best of `reps`)."""
    n = 8192 if setup.device == "cuda" else 2048
    dtype = torch.bfloat16 if setup.precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=setup.device, dtype=dtype)
    b = torch.randn(n, n, device=setup.device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        setup.sync()
        start = time.perf_counter()
        a @ b
        setup.sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def ensure_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_MODE", "disabled")


def clean_env() -> dict[str, str]:
    """This environment without the torch.distributed settings `Run` put into it."""
    return {k: v for k, v in os.environ.items()
            if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
