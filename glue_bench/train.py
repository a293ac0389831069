"""THE training loop: one GLUE job under DeepSpeed, from spec to metrics.json.

Read top to bottom: distributed setup -> seed -> model (+ method) -> data -> deepspeed.initialize ->
epochs of training with dev evaluation -> best-dev predictions -> results. Every file write, log line
and progress bar happens on rank 0. This module is also the per-rank entry point that executors start
under their own launcher (`torchrun ... -m glue_bench.train --spec S --output-dir D`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from glue_bench import stop

if __name__ == "__main__":
    stop.install()  # before torch loads: a stop signal during start-up is not lost

import numpy as np  # noqa: E402
import torch  # noqa: E402

from glue_bench import checkpoint as ckpt  # noqa: E402
from glue_bench import tracking  # noqa: E402
from glue_bench.data import (  # noqa: E402
    Encoded,
    Padding,
    TokenCache,
    eval_batches,
    rank_micro_batches,
    resolve_data_source,
    subset_rows,
    train_batches,
)
from glue_bench.dropout import use_fast_dropout  # noqa: E402
from glue_bench.errors import GlueBenchError  # noqa: E402
from glue_bench.executors.claims import LeaseKeeper  # noqa: E402
from glue_bench.launch import EXIT_INTERRUPTED, free_port  # noqa: E402
from glue_bench.methods import ParameterCounts, apply_method  # noqa: E402
from glue_bench.metrics import compute_metrics, task_score  # noqa: E402
from glue_bench.model_source import folder_weights_hash, resolve_model  # noqa: E402
from glue_bench.models import load_model, load_tokenizer  # noqa: E402
from glue_bench.results import SCHEMA_VERSION, atomic_write_json, atomic_write_text  # noqa: E402
from glue_bench.spec import JobSpec  # noqa: E402
from glue_bench.tasks import Task, get_task  # noqa: E402

log = logging.getLogger("glue_bench.train")



class SingleProcess:
    """The `Run` interface for one process without torch.distributed (used by `glue-bench predict`)."""

    rank, world = 0, 1

    def __init__(self, device: torch.device):
        self.device = device

    def gather(self, obj):
        return [obj]


class Interrupted(Exception):
    """A stop signal arrived; `last` has been written."""


STOP_CHECK_STEPS = 10  # with several ranks, how often they agree on a stop signal


class Run:
    """Rank, world and device of this process, and the stop flag set by signals."""

    def __init__(self, spec: JobSpec):
        import deepspeed

        if "RANK" not in os.environ:  # one process without a launcher
            os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=str(free_port()))
        self.rank = int(os.environ["RANK"])
        self.world = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        use_gpu = spec.num_gpus > 0 and torch.cuda.is_available()
        if spec.num_gpus > 0 and not use_gpu:
            raise GlueBenchError(f"the spec asks for {spec.num_gpus} GPUs but torch sees none; use num_gpus 0")
        self.device = torch.device("cuda", self.local_rank) if use_gpu else torch.device("cpu")
        if use_gpu:
            torch.cuda.set_device(self.device)
        deepspeed.init_distributed(dist_backend="nccl" if use_gpu else "gloo", auto_mpi_discovery=False)
        self.is_main = self.rank == 0

    def should_stop(self, step: int | None = None) -> bool:
        """Every rank must stop at the same step, so ranks agree on the flag: a tiny collective (and a host
        sync), asked every STOP_CHECK_STEPS optimizer steps and whenever `step` is None (epoch ends)."""
        if self.world == 1:
            return stop.requested
        if step is not None and step % STOP_CHECK_STEPS:
            return False
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def gather(self, obj):
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def resolve_precision(spec: JobSpec, device: torch.device) -> str:
    if spec.precision != "auto":
        if spec.precision == "fp16" and device.type == "cpu":
            raise GlueBenchError("precision fp16 is not supported on the CPU; use fp32 or bf16")
        return spec.precision
    if device.type == "cpu":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def build_deepspeed_config(spec: JobSpec, world_size: int, precision: str) -> dict:
    """The DeepSpeed config of a job: a pure function of the spec, world size and resolved precision."""
    micro, accum = spec.batch_layout(world_size)
    config = {
        "train_batch_size": spec.batch_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": spec.max_grad_norm,
        "zero_optimization": {"stage": spec.zero_stage},
        "zero_allow_untested_optimizer": True,  # we hand DeepSpeed torch's AdamW
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if precision == "bf16" and spec.zero_stage == 0:
        # fp32 weights and optimizer, bf16 matmuls under torch.autocast (the Trainer's bf16): without ZeRO,
        # DeepSpeed's bf16 weights go through its fp16-style optimizer wrapper, whose per-tensor overflow checks
        # and master-weight copies cost up to 1.9x in step time on a GPU (benchmarks/gpu/)
        config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    elif precision == "bf16":
        config["bf16"] = {"enabled": True}
    elif precision == "fp16":
        # fp16 needs a ZeRO optimizer for world-size-free optimizer checkpoints
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}
        config["zero_optimization"]["stage"] = max(1, spec.zero_stage)
    return config


def build_engine(model, spec: JobSpec, run: Run, precision: str, warmup_steps: int, total_steps: int,
                 config_overrides: dict | None = None):
    """The DeepSpeed engine of a job: torch's fused AdamW, warmup + linear decay, gradient clipping.
    `config_overrides` (benchmarks) are merged into the DeepSpeed config.

    Returns (engine, DeepSpeed config)."""
    import deepspeed

    # fused: one kernel per parameter group on CPUs and GPUs (the per-tensor loop cost ~0.2 s a step on MiniLM)
    optimizer = torch.optim.AdamW(optimizer_groups(model, spec.weight_decay), lr=spec.learning_rate, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup_steps, total_steps))
    ds_config = {**build_deepspeed_config(spec, run.world, precision), **(config_overrides or {})}
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_config)
    if engine.get_global_grad_norm() is None and not ds_config["zero_optimization"]["stage"]:
        # fp32 weights without ZeRO: DeepSpeed clips but drops the norm; keep it for the history. Every rank
        # holds the same, all-reduced gradients here, so torch's foreach clip (one fused norm, one fused scale)
        # does what DeepSpeed's does tensor by tensor, less its all-reduce of the norm.
        trainable = [p for p in engine.module.parameters() if p.requires_grad]

        def clip_and_keep_norm() -> None:
            engine._global_grad_norm = torch.nn.utils.clip_grad_norm_(trainable, spec.max_grad_norm, foreach=True)
        engine.clip_fp32_gradients = clip_and_keep_norm
    if run.world == 1 and not ds_config["zero_optimization"]["stage"]:
        # one rank and no ZeRO: nothing to reduce; skips DeepSpeed's flatten, all-reduce and unflatten copies
        engine.enable_backward_allreduce = False
    return engine, ds_config


def optimizer_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices, none on biases and LayerNorm parameters."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if name.endswith(".bias") or id(p) in no_decay else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def linear_schedule(warmup_steps: int, total_steps: int):
    """lr multiplier: linear warmup to 1, then linear decay to 0 at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class History:
    """history.jsonl: one JSON object per line, appended (rank 0 only), mirrored to the tracker."""

    def __init__(self, path: Path, enabled: bool, tracker: tracking.Tracker):
        self.path, self.enabled, self.tracker = path, enabled, tracker

    def write(self, record: dict) -> None:
        if self.enabled:
            record = {**record, "time": round(time.time(), 3)}
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if "event" not in record:
                self.tracker.log({k: v for k, v in record.items() if "/" in k}, step=record["step"])


def start_tracker(spec: JobSpec, output_dir: Path, precision: str) -> tracking.Tracker:
    """The job's wandb run (rank 0). The run id lives in the results folder, so a resumed job continues
    the same run; a new folder (a new job, or --force) gets a new one."""
    id_file = output_dir / tracking.RUN_ID_FILE
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    resume = run_id is not None
    if run_id is None:
        import uuid

        run_id = uuid.uuid4().hex[:12]
    tags = [spec.method, spec.task, *([f"m={spec.bottleneck}"] if spec.bottleneck else []), *spec.tags]
    config = {**spec.to_dict(), "job_id": spec.job_id, "precision_resolved": precision,
              "versions": library_versions(), "hardware": tracking.hardware()}
    tracker = tracking.start(spec.wandb, project=spec.wandb_project, entity=spec.wandb_entity,
                             group=spec.wandb_group, job_type=spec.task, name=spec.job_id, tags=tags,
                             config=config, directory=output_dir, run_id=run_id, resume=resume)
    if tracker.run_id is not None and not id_file.is_file():
        atomic_write_text(id_file, tracker.run_id + "\n")
    return tracker


def summary_values(metrics: dict) -> dict:
    """The wandb summary of a finished job: best dev metrics (MNLI per split) and the parameter cost."""
    values = {"best/task_score": metrics["task_score"], "best_epoch": metrics["best_epoch"],
              "trainable_params": metrics["parameters"]["trainable"],
              "trainable_percent": metrics["parameters"]["trainable_percent"]}
    for split, split_metrics in metrics["dev"].items():
        for name, value in split_metrics.items():
            values[f"best/{split}/{name}"] = value
    return values


def predict(model, encoded: Encoded, task: Task, run: Run, collator: Padding,
            batch_size: int) -> tuple[np.ndarray, dict]:
    """Predictions for a whole split, sharded over ranks, gathered in idx order with no duplicates.

    `run` needs `world`, `rank`, `device` and `gather`; one process passes `SingleProcess`.
    """
    model.eval()
    idx, preds = [], []
    rows_per_rank = 0
    with torch.no_grad():
        for rows in eval_batches(encoded.lengths, run.world, run.rank, batch_size):
            batch = collator(encoded, rows)
            batch.pop("labels")
            logits = model(**to_device(batch, run.device)).logits.float()
            preds.append(logits[:, 0] if task.is_regression else logits.argmax(-1))  # on the device: no sync
            idx.append(encoded.idx[rows])
            rows_per_rank += len(rows)
    local = (np.concatenate(idx) if idx else np.zeros(0, np.int64),
             torch.cat(preds).cpu().numpy() if preds else np.zeros(0))
    parts = run.gather(local)
    all_idx = np.concatenate([p[0] for p in parts])
    all_pred = np.concatenate([p[1] for p in parts])
    order = np.argsort(all_idx, kind="stable")
    all_idx, all_pred = all_idx[order], all_pred[order]
    keep = np.concatenate([[True], all_idx[1:] != all_idx[:-1]]) if len(all_idx) else np.zeros(0, bool)
    all_idx, all_pred = all_idx[keep], all_pred[keep]
    if len(all_idx) != len(encoded):
        raise RuntimeError(f"gathered {len(all_idx)} predictions for {len(encoded)} examples")
    model.train()
    return all_pred, {"rows_per_rank": [p[0].size for p in parts]}


def keep_freed_memory(device: torch.device) -> bool:
    """On the CPU, have glibc's malloc keep freed memory for reuse. By default every block over its mmap
    threshold (at most 32 MB), and whatever is freed at the top of the heap, goes back to the kernel; each
    step's activations, dropout masks and gradients then land on fresh pages, which the kernel faults in
    and zeroes one by one (the word-embedding gradient alone: 47 MB, ~15 ms of a ~0.5 s MiniLM step).
    Serving all blocks from the heap and never trimming it makes a step reuse the last step's pages; the
    price is that the process keeps its peak memory until it exits. GPU jobs and non-glibc systems are left
    as they are. Returns whether the setting was applied."""
    if device.type != "cpu":
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def to_device(batch: dict, device: torch.device) -> dict:
    """A collated batch on the device: through pinned memory with non-blocking copies to a GPU."""
    if device.type != "cuda":
        return batch
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def train_step(engine, train: Encoded, batch_rows: np.ndarray, run: Run, accum: int, collator: Padding):
    """One optimizer step on one global batch: this rank's micro-batches, forward, backward, step.

    Returns (sum of micro-batch losses x examples, as a device tensor; examples seen by this rank)."""
    loss_sum, examples = 0.0, 0
    for rows in rank_micro_batches(batch_rows, run.world, run.rank, accum):
        batch = to_device(collator(train, rows), run.device)
        out = engine(**batch)
        # The model's loss is a mean over the micro-batch; rescale so that DeepSpeed's averaging over
        # accumulation steps and ranks yields the exact global-batch mean.
        engine.backward(out.loss * (len(rows) * run.world * accum / len(batch_rows)))
        engine.step()
        loss_sum = loss_sum + out.loss.detach() * len(rows)
        examples += len(rows)
    return loss_sum, examples


def frozen_digest(model) -> str:
    """sha256 over every frozen parameter's bytes: proves they come out of training bit-identical."""
    import hashlib

    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def labels_by_idx(encoded: Encoded) -> np.ndarray:
    return encoded.labels[np.argsort(encoded.idx, kind="stable")]


def write_predictions(path: Path, task: Task, encoded: Encoded, preds: np.ndarray, with_labels: bool) -> int:
    """`idx<TAB>prediction[<TAB>label]` sorted by idx; label ids, or floats for STS-B."""
    order = np.argsort(encoded.idx, kind="stable")
    fmt = (lambda v: f"{float(v):.6f}") if task.is_regression else (lambda v: str(int(v)))
    lines = ["idx\tprediction\tlabel" if with_labels else "idx\tprediction"]
    for i, pred, label in zip(encoded.idx[order], preds, encoded.labels[order], strict=True):
        lines.append(f"{int(i)}\t{fmt(pred)}" + (f"\t{fmt(label)}" if with_labels else ""))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines) - 1


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("glue-bench", "torch", "transformers", "datasets", "deepspeed", "scikit-learn", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def model_provenance(model: str) -> dict:
    path = resolve_model(model)
    info = {"model": model, "resolved": path}
    if Path(path).is_dir():
        info["weights_sha256"] = folder_weights_hash(path)
    return info


def setup_logging(output_dir: Path, is_main: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not is_main:
        return
    if os.environ.get("GLUE_BENCH_LOG_CAPTURED"):  # an executor already writes our output to train.log
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(output_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if not any(not isinstance(h, logging.FileHandler) for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(console)


def main(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> dict:
    """Run one job into `output_dir`; resumes from its `last` checkpoint when there is one."""

    started = time.time()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    run = Run(spec)
    setup_logging(output_dir, run.is_main)
    lease = LeaseKeeper.from_environment(output_dir) if run.is_main else None
    if run.is_main:
        atomic_write_text(output_dir / "spec.json", spec.to_json())
    stop.install()
    keep_freed_memory(run.device)
    task = get_task(spec.task)
    precision = resolve_precision(spec, run.device)
    tracker = start_tracker(spec, output_dir, precision) if run.is_main else tracking.NullTracker()
    history = History(output_dir / "history.jsonl", run.is_main, tracker)
    ckpt_dir = output_dir / "checkpoints"

    # seed -> model + method
    seed_everything(spec.seed)
    tokenizer = load_tokenizer(spec.model)
    model = load_model(spec.model, task)
    counts: ParameterCounts = apply_method(model, spec)
    # CPU: dropout masks from a fast generator (torch's are drawn element by element on one thread)
    fast_dropout = run.device.type == "cpu" and use_fast_dropout(model) > 0
    model.to(run.device)
    log.info("job %s: %s on %s, %s; trainable %d of %d parameters (%.2f%% of the base model)", spec.job_id,
             spec.method, task.display, spec.model, counts.trainable, counts.total, counts.trainable_percent)

    # data
    source = resolve_data_source(spec.data)
    cache = TokenCache(cache_dir)
    train_full = cache.encoded(task, "train", source, tokenizer, spec.max_seq_length)
    train = train_full.select(subset_rows(len(train_full), spec.max_train_samples, spec.data_seed))
    dev = {}
    for split in task.dev_splits:
        full = cache.encoded(task, split, source, tokenizer, spec.max_seq_length)
        dev[split] = full.select(subset_rows(len(full), spec.max_eval_samples, spec.data_seed + 1))
    test = {split: cache.encoded(task, split, source, tokenizer, spec.max_seq_length)
            for split in (task.test_splits if spec.predict_test else ())}
    collator = Padding.for_tokenizer(tokenizer)
    lengths = train.lengths

    # optimizer, schedule, engine
    micro, accum = spec.batch_layout(run.world)
    per_epoch = len(train) // spec.batch_size + (len(train) % spec.batch_size >= run.world * accum)
    total_steps = per_epoch * spec.epochs
    if total_steps == 0:
        raise GlueBenchError(f"{len(train)} training examples make no batch of {spec.batch_size}")
    warmup = math.ceil(spec.warmup_ratio * total_steps)
    engine, ds_config = build_engine(model, spec, run, precision, warmup, total_steps)
    module = engine.module
    # after DeepSpeed's cast to bf16/fp16 (if any): training itself must leave the frozen weights alone
    frozen_at_start = frozen_digest(module)

    # resume
    epoch, step_in_epoch, global_step = 0, 0, 0
    best = {"score": -math.inf, "epoch": None, "step": None, "dev": None}
    best_tensors = ckpt.trainable_state(module)
    last = ckpt.latest_checkpoint(ckpt_dir, "last")
    if last is not None:
        tensors, opt_state, state = ckpt.read_checkpoint(last)
        ckpt.load_trainable_state(module, tensors)
        ckpt.restore_optimizer_state(engine, opt_state)
        engine.lr_scheduler.load_state_dict(state["scheduler"])
        rngs = state["rng"]
        ckpt.set_rng_state(rngs[run.rank] if len(rngs) == run.world else rngs[0])
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        best = state["best"]
        best_ckpt = ckpt.latest_checkpoint(ckpt_dir, "best")
        if best_ckpt is not None:
            best_tensors = ckpt.read_checkpoint(best_ckpt)[0]
        log.info("resumed from %s at epoch %d, step %d", last.name, epoch, global_step)
        history.write({"event": "resume", "step": global_step, "epoch": epoch, "checkpoint": last.name})
    else:
        history.write({"event": "start", "step": 0, "world_size": run.world, "precision": precision,
                       "zero_stage": ds_config["zero_optimization"]["stage"], "fast_dropout": fast_dropout})

    def save_last() -> None:
        opt_state = ckpt.gather_optimizer_state(engine)
        rngs = run.gather(ckpt.rng_state())
        if run.is_main:
            state = {"scheduler": engine.lr_scheduler.state_dict(), "rng": rngs, "epoch": epoch,
                     "step_in_epoch": step_in_epoch, "global_step": global_step, "best": best}
            ckpt.write_checkpoint(ckpt_dir, "last", global_step, ckpt.trainable_state(module), opt_state, state)
        run.barrier()

    eval_rows: dict[str, list[int]] = {}

    def evaluate() -> None:
        nonlocal best, best_tensors
        results = {}
        for split, encoded in dev.items():
            preds, info = predict(module, encoded, task, run, collator, max(2 * micro, 32))
            results[split] = compute_metrics(task, split, preds, labels_by_idx(encoded))
            eval_rows[split] = info["rows_per_rank"]
        score = task_score(task, results)
        record = {"step": global_step, "epoch": epoch + step_in_epoch / per_epoch, "eval/task_score": score}
        for split, values in results.items():
            prefix = "eval/" if len(dev) == 1 else f"eval/{split}/"
            record.update({prefix + k: v for k, v in values.items()})
        history.write(record)
        log.info("step %d: dev %s task score %.4f", global_step, json.dumps(results), score)
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "step": global_step, "dev": results}
            best_tensors = ckpt.trainable_state(module)
            if run.is_main:
                ckpt.write_checkpoint(ckpt_dir, "best", global_step, best_tensors, None, {"best": best})

    # train
    module.train()
    loss_sum = torch.zeros((), device=run.device)
    examples_since_log, t_log = 0, time.time()
    try:
        while epoch < spec.epochs:
            batches = [b for b in train_batches(lengths, spec.batch_size, spec.seed, epoch, spec.group_by_length)
                       if len(b) >= run.world * accum]
            while step_in_epoch < len(batches):
                step_loss, step_examples = train_step(engine, train, batches[step_in_epoch], run, accum, collator)
                loss_sum += step_loss  # a device tensor: no host sync here
                examples_since_log += step_examples
                step_in_epoch += 1
                global_step += 1
                if global_step == 1:
                    history.write({"event": "first_step", "step": 1, "seconds_since_start": time.time() - started})
                if global_step % spec.log_every_steps == 0:
                    now = time.time()
                    grad_norm = engine.get_global_grad_norm()
                    history.write({
                        "step": global_step, "epoch": epoch + step_in_epoch / per_epoch,
                        "train/loss": loss_sum.item() / max(1, examples_since_log),  # sync every N steps
                        "train/lr": engine.lr_scheduler.get_last_lr()[0],
                        "train/grad_norm": float(grad_norm) if grad_norm is not None else None,
                        "train/examples_per_s": examples_since_log * run.world / max(1e-9, now - t_log),
                    })
                    loss_sum.zero_()
                    examples_since_log, t_log = 0, now
                if spec.eval_every_steps and global_step % spec.eval_every_steps == 0 \
                        and step_in_epoch < len(batches):
                    evaluate()
                if run.should_stop(global_step):
                    save_last()
                    raise Interrupted()
            evaluate()
            epoch, step_in_epoch = epoch + 1, 0
            save_last()
            if epoch < spec.epochs and run.should_stop():
                raise Interrupted()
    except Interrupted:
        log.warning("stop signal: saved checkpoint at step %d; run the job again to resume", global_step)
        history.write({"event": "interrupted", "step": global_step})
        tracker.finish()
        raise

    # predictions with the best dev weights
    ckpt.load_trainable_state(module, best_tensors)
    predictions, final_dev = {}, {}
    for split, encoded in dev.items():
        preds, _ = predict(module, encoded, task, run, collator, max(2 * micro, 32))
        final_dev[split] = compute_metrics(task, split, preds, labels_by_idx(encoded))
        if run.is_main:
            predictions[split] = write_predictions(output_dir / "predictions" / f"{split}.tsv", task, encoded,
                                                   preds, with_labels=True)
    for split, encoded in test.items():
        preds, _ = predict(module, encoded, task, run, collator, max(2 * micro, 32))
        if run.is_main:
            predictions[split] = write_predictions(output_dir / "predictions" / f"{split}.tsv", task, encoded,
                                                   preds, with_labels=False)
    frozen_after = frozen_digest(module)
    if frozen_after != frozen_at_start:
        raise RuntimeError("frozen parameters changed during training")
    digests = run.gather(float(sum(p.double().sum().item() for _, p in ckpt.trainable_named_parameters(module))))
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different parameters: {digests}")

    metrics = None
    if run.is_main:
        if spec.method == "full":
            module.save_pretrained(output_dir / "model", safe_serialization=True)
            tokenizer.save_pretrained(output_dir / "model")
        else:
            from safetensors.torch import save_file
            tmp = output_dir / ".adapter.safetensors.tmp"
            save_file(best_tensors, str(tmp), metadata={"job_id": spec.job_id, "method": spec.method})
            os.replace(tmp, output_dir / "adapter.safetensors")
        label_counts = np.bincount(train.labels.astype(np.int64), minlength=task.num_labels) \
            if not task.is_regression else None
        metrics = {
            "schema_version": SCHEMA_VERSION,
            "job_id": spec.job_id,
            "task": task.name,
            "method": spec.method,
            "bottleneck": spec.bottleneck,
            "dev": final_dev,
            "task_score": task_score(task, final_dev),
            "best_epoch": best["epoch"],
            "best_step": best["step"],
            "global_steps": global_step,
            "parameters": counts.to_dict(),
            "train_examples": len(train),
            "eval_examples": {split: len(e) for split, e in dev.items()},
            "train_label_distribution": (
                {"counts": label_counts.tolist(), "names": list(task.label_names)} if label_counts is not None
                else {"mean": float(train.labels.mean()), "std": float(train.labels.std())}),
            "predictions": predictions,
            "distributed": {"world_size": run.world, "eval_rows_per_rank": eval_rows,
                            "micro_batch_size": micro, "gradient_accumulation_steps": accum,
                            "zero_stage": ds_config["zero_optimization"]["stage"], "precision": precision,
                            "device": str(run.device.type), "param_sums_per_rank": digests},
            "frozen_parameters_sha256": frozen_after,
            "cache": {"hits": cache.hits, "misses": cache.misses},
            "provenance": {
                "data": {"source": "hub" if source == "hub" else "glue_data",
                         "train": train_full.source,
                         **{split: e.source for split, e in {**dev, **test}.items()}},
                "model": model_provenance(spec.model),
                "versions": library_versions(),
                "git_commit": git_commit(),
                "host": socket.gethostname(),
            },
            "wall_seconds": time.time() - started,
            "spec": spec.to_dict(),
        }
        atomic_write_json(output_dir / "metrics.json", metrics)  # last: its presence means "done"
        tracker.summary(summary_values(metrics))
        tracker.finish()
        if lease is not None:
            lease.stop()
        if not spec.keep_checkpoints:
            import shutil
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        log.info("done: %s task score %.4f -> %s", task.display, metrics["task_score"], output_dir)
    run.barrier()
    return metrics or {}


def write_error(output_dir: Path, exc: BaseException) -> None:
    """error.json: exception type, message, log tail and attempt number (rank 0)."""
    output_dir = Path(output_dir)
    previous = json.loads((output_dir / "error.json").read_text()).get("attempt", 0) \
        if (output_dir / "error.json").is_file() else 0
    log_file = output_dir / "train.log"
    tail = log_file.read_text(errors="replace").splitlines()[-40:] if log_file.is_file() else []
    atomic_write_json(output_dir / "error.json", {
        "type": type(exc).__name__, "message": str(exc), "attempt": previous + 1,
        "traceback": traceback.format_exception(exc)[-5:], "log_tail": tail, "time": time.time(),
    })


def run_job(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> int:
    """Run a job, record a failure in error.json, and return the process exit code."""
    rank0 = os.environ.get("RANK", "0") == "0"
    try:
        main(spec, output_dir, cache_dir)
        return 0
    except Interrupted:
        return EXIT_INTERRUPTED
    except Exception as e:
        tracking.finish_all()
        if rank0:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            write_error(output_dir, e)
        if isinstance(e, GlueBenchError):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glue_bench.train", description="Run one job (one rank).")
    parser.add_argument("--spec", required=True, type=Path, help="job spec JSON")
    parser.add_argument("--output-dir", required=True, type=Path, help="results folder of the job")
    parser.add_argument("--cache-dir", type=Path, default=None, help="tokenisation cache")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    try:
        spec = JobSpec.load(args.spec)
    except GlueBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return run_job(spec, args.output_dir, args.cache_dir)


if __name__ == "__main__":
    sys.exit(cli())
