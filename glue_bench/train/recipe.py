"""THE training recipe: one GLUE job under DeepSpeed, from spec to metrics.json. It reads top to bottom:

- `setup`: inputs checked -> runtime (rank, device) -> seed -> model + method -> data -> engine -> resume;
- `fit`: epochs of training with dev evaluation, the best dev weights and the resumable `last` checkpoint;
- `finish`: predictions with the best dev weights, the weights, and metrics.json last (its presence means done).

Every file write, log line and progress bar happens on rank 0. This module is also the per-rank entry point that
executors start under their own launcher (`torchrun ... -m glue_bench.train --spec S --output-dir D`, through
`train/__main__.py`, which installs the stop handlers before torch loads).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from glue_bench.errors import GlueBenchError, os_error_line
from glue_bench.process import ExitCode
from glue_bench.results import tracking
from glue_bench.results.claims import LeaseKeeper
from glue_bench.results.job_folder import JobDir, atomic_write_bytes
from glue_bench.results.metrics import compute_metrics, half_metrics, task_score
from glue_bench.results.record import MetricsRecord
from glue_bench.spec import JobSpec
from glue_bench.tasks import Task, get_task
from glue_bench.train import checkpoint as ckpt
from glue_bench.train import prune, stop
from glue_bench.train.data import Encoded, Padding, TokenCache, resolve_data_source, subset_rows, train_batches
from glue_bench.train.dropout import use_fast_dropout
from glue_bench.train.engine import build_engine, train_step
from glue_bench.train.history import History, setup_logging, start_tracker, summary_values
from glue_bench.train.methods import ParameterCounts, apply_method, method_hooks
from glue_bench.train.models import load_model, load_tokenizer
from glue_bench.train.prediction import labels_by_idx, predict, write_predictions
from glue_bench.train.preflight import check_job
from glue_bench.train.provenance import frozen_digest, git_commit, library_versions, model_provenance
from glue_bench.train.runtime import Run, keep_freed_memory, resolve_precision, seed_everything
from glue_bench.train.weights import load_start, save_weights

log = logging.getLogger(__name__)
SMALL_SPLIT_SHARE = 0.5
"""A split with fewer rows than this share of its official size, unasked, gets a warning."""


class Interrupted(Exception):
    """A stop signal arrived; `last` has been written."""


@dataclass
class Job:
    """What `setup` builds and `fit` / `finish` use: one job's runtime, model, data, engine and progress."""

    spec: JobSpec
    out: JobDir
    run: Run
    task: Task
    started: float
    precision: str
    tracker: tracking.Tracker
    history: History
    lease: LeaseKeeper | None
    tokenizer: object
    counts: ParameterCounts
    fast_dropout: bool
    cache: TokenCache
    source: str
    train_full: Encoded
    train: Encoded
    dev: dict[str, Encoded]
    test: dict[str, Encoded]
    collator: Padding
    micro: int
    accum: int
    per_epoch: int
    engine: object
    ds_config: dict
    frozen_at_start: str
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best: dict = field(default_factory=lambda: {"score": -math.inf, "epoch": None, "step": None, "dev": None})
    best_tensors: dict = field(default_factory=dict)
    eval_rows: dict[str, list[int]] = field(default_factory=dict)
    heldout: Encoded | None = None
    """Training rows held out as the `held-out` protocol's choosing set (`heldout_train_rows`), scored at each
    evaluation."""
    pruned: dict | None = None
    """Where ASHA stopped the job (`train.prune.decide`); None while it runs on."""
    resumed_from: str | None = None
    """The `last` checkpoint this process resumed from (None: it started the job fresh)."""
    started_from: dict | None = None
    """`init_from`: the job whose trained method weights this one started from."""

    @property
    def module(self):
        return self.engine.module

    @property
    def eval_batch(self) -> int:
        return self.spec.eval_batch(self.run.world)


def setup(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> Job:
    """Runtime -> seed -> model + method -> data -> engine -> resume from `last` when there is one."""
    started = time.time()
    check_job(spec)  # a bad model path or missing data: one line before DeepSpeed, wandb or any write
    out = JobDir(output_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    run = Run(spec)
    setup_logging(out.path, run.is_main)
    lease = LeaseKeeper.from_environment(out.path) if run.is_main else None
    if run.is_main:
        out.write_spec(spec)
    stop.install()
    keep_freed_memory(run.device)
    task = get_task(spec.task)
    precision = resolve_precision(spec, run.device)
    tracker = start_tracker(spec, out.path, precision) if run.is_main else tracking.NullTracker()
    history = History(out.history_path, run.is_main, tracker)

    # seed -> model + method
    seed_everything(spec.seed)
    tokenizer = load_tokenizer(spec.model)
    model = load_model(spec.model, task)
    counts = apply_method(model, spec)
    started_from = load_start(model, spec, out) if spec.init_from else None
    # CPU: dropout masks from a fast generator (torch's are drawn element by element on one thread)
    fast_dropout = run.device.type == "cpu" and use_fast_dropout(model) > 0
    model.to(run.device)
    log.info("job %s: %s on %s, %s; trainable %d of %d parameters (%.2f%% of the base model)", spec.job_id,
             spec.method, task.display, spec.model, counts.trainable, counts.total, counts.trainable_percent)

    # data
    source = resolve_data_source(spec.data)
    cache = TokenCache(cache_dir)
    train_full = cache.encoded(task, "train", source, tokenizer, spec.max_seq_length)
    warn_if_small(task, "train", len(train_full), spec.max_train_samples)
    train = train_full.select(subset_rows(len(train_full), spec.max_train_samples, spec.data_seed))
    heldout = None
    if spec.heldout_train_rows is not None:  # the choosing set: a fixed subset, the same for every seed
        if spec.heldout_train_rows >= len(train):
            raise GlueBenchError(f"heldout_train_rows {spec.heldout_train_rows}: {task.display} has {len(train)} "
                                 "training rows; hold out fewer")
        held = np.zeros(len(train), dtype=bool)
        held[subset_rows(len(train), spec.heldout_train_rows, spec.data_seed + 2)] = True
        heldout, train = train.select(np.flatnonzero(held)), train.select(np.flatnonzero(~held))
    dev = {}
    for split in task.dev_splits:
        full = cache.encoded(task, split, source, tokenizer, spec.max_seq_length)
        dev[split] = full.select(subset_rows(len(full), spec.max_eval_samples, spec.data_seed + 1))
    test = {split: cache.encoded(task, split, source, tokenizer, spec.max_seq_length)
            for split in (task.test_splits if spec.predict_test else ())}

    # optimizer, schedule, engine
    micro, accum = spec.batch_layout(run.world)
    per_epoch = spec.steps_per_epoch(len(train), run.world)
    total_steps = per_epoch * spec.epochs
    if total_steps == 0:
        raise GlueBenchError(f"{len(train)} training examples make no batch of {spec.batch_size}")
    method_hooks(model).begin(total_steps)  # AdaLoRA's budget schedule counts the job's steps
    engine, ds_config = build_engine(model, spec, run, precision, math.ceil(spec.warmup_ratio * total_steps),
                                     total_steps)
    job = Job(spec=spec, out=out, run=run, task=task, started=started, precision=precision, tracker=tracker,
              history=history, lease=lease, tokenizer=tokenizer, counts=counts, fast_dropout=fast_dropout,
              cache=cache, source=source, train_full=train_full, train=train, dev=dev, test=test,
              collator=Padding.for_tokenizer(tokenizer), micro=micro, accum=accum, per_epoch=per_epoch,
              engine=engine, ds_config=ds_config, heldout=heldout, started_from=started_from,
              # after DeepSpeed's cast to bf16/fp16 (if any): training itself must leave the frozen weights alone
              frozen_at_start=frozen_digest(engine.module))
    job.best_tensors = ckpt.trainable_state(job.module)
    resume(job)
    return job


def warn_if_small(task: Task, split: str, rows: int, asked: int | None) -> None:
    """A split far smaller than its official size that no `max_*_samples` asked for is most likely the wrong
    data (a test fixture, a truncated download): said once, in the job's log."""
    official = task.sizes.get(split)
    if asked is None and official and rows < SMALL_SPLIT_SHARE * official:
        log.warning("%s %s has %d rows, %.1f%% of its official %d: is this the whole GLUE data? (max_train_samples "
                    "asks for a subset on purpose)", task.display, split, rows, 100 * rows / official, official)


def resume(job: Job) -> None:
    """Continue from the `last` checkpoint (weights, optimizer, schedule, RNG, position, best so far)."""
    last = ckpt.latest_checkpoint(job.out.checkpoints_dir, "last")
    # where each rank runs: the history shows every start of the job by host and pid
    ranks = job.run.gather({"host": socket.gethostname(), "pid": os.getpid()})
    if last is None:
        job.history.write({"event": "start", "step": 0, "world_size": job.run.world, "precision": job.precision,
                           "zero_stage": job.ds_config["zero_optimization"]["stage"],
                           "fast_dropout": job.fast_dropout, "ranks": ranks})
        return
    tensors, opt_state, state = ckpt.read_checkpoint(last)
    ckpt.load_trainable_state(job.module, tensors)
    ckpt.restore_optimizer_state(job.engine, opt_state)
    scheduler = job.engine.lr_scheduler
    scheduler.load_state_dict(state["scheduler"])
    # load_state_dict restores the schedule's position but not the optimizer's learning rate, which would stay at
    # the schedule's first value for the first step after a resume: put the rate the schedule is at back
    for group, lr in zip(scheduler.optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = lr
    rngs = state["rng"]
    ckpt.set_rng_state(rngs[job.run.rank] if len(rngs) == job.run.world else rngs[0])
    job.epoch, job.step_in_epoch, job.global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
    job.best = state["best"]
    job.pruned = state.get("pruned")  # pruned before a crash in `finish`: the decision stands
    method_hooks(job.module).load_state_dict(state.get("method", {}))
    best_ckpt = ckpt.latest_checkpoint(job.out.checkpoints_dir, "best")
    if best_ckpt is not None:
        job.best_tensors = ckpt.read_checkpoint(best_ckpt)[0]
    job.resumed_from = last.name
    log.info("resumed from %s at epoch %d, step %d", last.name, job.epoch, job.global_step)
    stop.crash_point("after-resume")
    job.history.write({"event": "resume", "step": job.global_step, "epoch": job.epoch, "checkpoint": last.name,
                       "ranks": ranks})


def save_last(job: Job) -> None:
    """The resumable `last` checkpoint (every rank takes part; rank 0 writes)."""
    opt_state = ckpt.gather_optimizer_state(job.engine)
    rngs = job.run.gather(ckpt.rng_state())
    if job.run.is_main:
        state = {"scheduler": job.engine.lr_scheduler.state_dict(), "rng": rngs, "epoch": job.epoch,
                 "step_in_epoch": job.step_in_epoch, "global_step": job.global_step, "best": job.best,
                 "pruned": job.pruned, "method": method_hooks(job.module).state_dict()}
        ckpt.write_checkpoint(job.out.checkpoints_dir, "last", job.global_step, ckpt.trainable_state(job.module),
                              opt_state, state)
    job.run.barrier()


def evaluate(job: Job) -> float:
    """Dev metrics now (on the whole dev set and on each fixed half, for the report's `held-out` protocol, and on
    the held-out training rows if any); the predictions are kept; a new best keeps its weights (and the `best`
    checkpoint). Returns the dev task score."""
    task = job.task
    results, halves = {}, {"a": {}, "b": {}}
    for split, encoded in job.dev.items():
        preds, info = predict(job.module, encoded, task, job.run, job.collator, job.eval_batch)
        labels = labels_by_idx(encoded)
        results[split] = compute_metrics(task, split, preds, labels)
        for half, values in half_metrics(task, split, preds, labels).items():
            halves[half][split] = values
        job.eval_rows[split] = info["rows_per_rank"]
        if job.run.is_main:
            keep_eval_predictions(job.out.eval_prediction_path(split, job.global_step), preds, task)
    score = task_score(task, results)
    record = {"step": job.global_step, "epoch": job.epoch + job.step_in_epoch / job.per_epoch,
              "eval/task_score": score}
    for name, metrics in (("", results), ("half_a/", halves["a"]), ("half_b/", halves["b"])):
        if name:
            record[f"eval/{name}task_score"] = task_score(task, metrics)
        for split, values in metrics.items():
            prefix = f"eval/{name}" if len(job.dev) == 1 else f"eval/{name}{split}/"
            record.update({prefix + k: v for k, v in values.items()})
    if job.heldout is not None:  # scored with the first dev split's metrics (MNLI: matched accuracy)
        first = task.dev_splits[0]
        preds, _ = predict(job.module, job.heldout, task, job.run, job.collator, job.eval_batch)
        values = compute_metrics(task, first, preds, labels_by_idx(job.heldout))
        record["eval/heldout/task_score"] = float(np.mean([values[m] for s, m in task.score if s == first]))
        record.update({f"eval/heldout/{k}": v for k, v in values.items()})
    job.history.write(record)
    log.info("step %d: dev %s task score %.4f", job.global_step, json.dumps(results), score)
    if score > job.best["score"]:
        job.best = {"score": score, "epoch": job.epoch, "step": job.global_step, "dev": results}
        job.best_tensors = ckpt.trainable_state(job.module)
        if job.run.is_main:
            ckpt.write_checkpoint(job.out.checkpoints_dir, "best", job.global_step, job.best_tensors, None,
                                  {"best": job.best})
            stop.crash_point("between-best-and-last")
    return score


def keep_eval_predictions(path: Path, preds: np.ndarray, task: Task) -> None:
    """One evaluation's dev predictions, in idx order, as a .npy array (the report's per-example tests read the
    ones of the evaluation a protocol chooses)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, preds.astype(np.float32 if task.is_regression else np.int16))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def fit(job: Job) -> None:
    """The loop: epochs of optimizer steps, evaluation at each epoch end (and every N steps if asked), `last`
    after each epoch and on a stop signal (then `Interrupted`)."""
    spec, run, engine = job.spec, job.run, job.engine
    job.module.train()
    loss_sum = torch.zeros((), device=run.device)
    examples_since_log, t_log = 0, time.time()
    smallest = spec.smallest_batch(run.world)  # a smaller last batch of an epoch is skipped
    try:
        while job.epoch < spec.epochs and job.pruned is None:
            batches = [b for b in train_batches(job.train.lengths, spec.batch_size, spec.seed, job.epoch,
                                                spec.group_by_length) if len(b) >= smallest]
            while job.step_in_epoch < len(batches):
                step_loss, step_examples = train_step(engine, job.train, batches[job.step_in_epoch], run, job.accum,
                                                      job.collator, job.global_step)
                loss_sum += step_loss  # a device tensor: no host sync here
                examples_since_log += step_examples
                job.step_in_epoch += 1
                job.global_step += 1
                if job.global_step == 1:
                    job.history.write({"event": "first_step", "step": 1,
                                       "seconds_since_start": time.time() - job.started})
                # every N steps, and at an epoch's end (a run shorter than N steps still logs its loss)
                if job.global_step % spec.log_every_steps == 0 or job.step_in_epoch == len(batches):
                    log_training(job, loss_sum, examples_since_log, t_log)  # a host sync every N steps
                    loss_sum.zero_()
                    examples_since_log, t_log = 0, time.time()
                if spec.eval_every_steps and job.global_step % spec.eval_every_steps == 0 \
                        and job.step_in_epoch < len(batches):
                    evaluate(job)
                if run.should_stop(job.global_step):
                    save_last(job)
                    raise Interrupted()
            score = evaluate(job)
            job.epoch, job.step_in_epoch = job.epoch + 1, 0
            # ASHA at a rung: rank 0 decides from the other jobs' folders, every rank follows
            job.pruned = run.gather(prune.decide_or_go_on(spec, job.out.path, job.epoch, score)
                                    if run.is_main else None)[0]
            if job.pruned is not None:
                log.info("pruned after %d epochs: dev task score %.4f is not in the top 1/%d of %s", job.epoch,
                         score, spec.prune_reduction, job.pruned["competing"])
                job.history.write({"event": "pruned", "step": job.global_step, **job.pruned})
            save_last(job)  # with the decision: a job resumed after a crash in `finish` stays pruned
            stop.crash_point("after-last")
            stop.pause_for_a_signal(spec.job_id, job.resumed_from is None)
            if job.epoch < spec.epochs and run.should_stop():
                raise Interrupted()
    except Interrupted:
        log.warning("stop signal: saved checkpoint at step %d; run the job again to resume", job.global_step)
        job.history.write({"event": "interrupted", "step": job.global_step})
        job.tracker.finish()
        raise


def log_training(job: Job, loss_sum, examples: int, since: float) -> None:
    """A training record: mean loss per example since the last one, learning rate, gradient norm, throughput."""
    grad_norm = job.engine.get_global_grad_norm()
    job.history.write({
        "step": job.global_step, "epoch": job.epoch + job.step_in_epoch / job.per_epoch,
        "train/loss": loss_sum.item() / max(1, examples),
        "train/lr": job.engine.lr_scheduler.get_last_lr()[0],
        "train/grad_norm": float(grad_norm) if grad_norm is not None else None,
        "train/examples_per_s": examples * job.run.world / max(1e-9, time.time() - since),
    })


def finish(job: Job) -> dict:
    """Predictions with the best dev weights, the checks that training was sound, the weights, metrics.json."""
    spec, run, task, module, out = job.spec, job.run, job.task, job.module, job.out
    ckpt.load_trainable_state(module, job.best_tensors)
    files, final_dev = {}, {}
    for split, encoded in job.dev.items():
        preds, _ = predict(module, encoded, task, run, job.collator, job.eval_batch)
        final_dev[split] = compute_metrics(task, split, preds, labels_by_idx(encoded))
        if run.is_main:
            files[split] = write_predictions(out.prediction_path(split), task, encoded, preds, with_labels=True)
    for split, encoded in job.test.items() if job.pruned is None else ():  # a pruned job predicts dev only
        preds, _ = predict(module, encoded, task, run, job.collator, job.eval_batch)
        if run.is_main:
            files[split] = write_predictions(out.prediction_path(split), task, encoded, preds, with_labels=False)
    frozen_after = frozen_digest(module)
    if frozen_after != job.frozen_at_start:
        raise RuntimeError("frozen parameters changed during training")
    digests = run.gather(float(sum(p.double().sum().item() for _, p in ckpt.trainable_named_parameters(module))))
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different parameters: {digests}")
    metrics = None
    if run.is_main:
        stop.crash_point("finish")  # the predictions are written; the weights and metrics.json are not
        save_weights(out, spec, module, job.tokenizer, job.best_tensors)
        metrics = out.write_metrics(metrics_record(job, final_dev, files, frozen_after, digests))  # last
        job.tracker.summary(summary_values(metrics))
        job.tracker.finish()
        if job.lease is not None:
            job.lease.stop()
        if not spec.keep_checkpoints:
            import shutil
            shutil.rmtree(out.checkpoints_dir, ignore_errors=True)
        log.info("done: %s task score %.4f -> %s", task.display, metrics["task_score"], out.path)
    run.barrier()
    return metrics or {}


def metrics_record(job: Job, final_dev: dict, files: dict, frozen_after: str, digests: list) -> MetricsRecord:
    """What this job measured, as its metrics.json record."""
    spec, task, train = job.spec, job.task, job.train
    if task.is_regression:
        distribution = {"mean": float(train.labels.mean()), "std": float(train.labels.std())}
    else:
        counts = np.bincount(train.labels.astype(np.int64), minlength=task.num_labels)
        distribution = {"counts": counts.tolist(), "names": list(task.label_names)}
    source = {"source": "hub"} if job.source == "hub" else {"source": "glue_data", "folder": job.source}
    return MetricsRecord(
        job_id=spec.job_id, task=task.name, method=spec.method, bottleneck=spec.bottleneck, dev=final_dev,
        task_score=task_score(task, final_dev), best_epoch=job.best["epoch"], best_step=job.best["step"],
        global_steps=job.global_step, parameters=job.counts.to_dict(), train_examples=len(train),
        eval_examples={split: len(e) for split, e in job.dev.items()}, train_label_distribution=distribution,
        prediction_files=files,
        distributed={"world_size": job.run.world, "eval_rows_per_rank": job.eval_rows,
                     "micro_batch_size": job.micro, "gradient_accumulation_steps": job.accum,
                     "zero_stage": job.ds_config["zero_optimization"]["stage"], "precision": job.precision,
                     "device": str(job.run.device.type), "param_sums_per_rank": digests},
        frozen_parameters_sha256=frozen_after, cache={"hits": job.cache.hits, "misses": job.cache.misses},
        provenance={"data": {**source, "train": job.train_full.source,
                             **{split: e.source for split, e in {**job.dev, **job.test}.items()}},
                    "model": model_provenance(spec.model), "versions": library_versions(),
                    "git_commit": git_commit(), "host": socket.gethostname(),
                    **({"init_from": job.started_from} if job.started_from else {})},
        wall_seconds=time.time() - job.started, spec=spec.to_dict(), pruned=job.pruned)


def main(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> dict:
    """Run one job into `output_dir`; resumes from its `last` checkpoint when there is one."""
    job = setup(spec, output_dir, cache_dir)
    fit(job)
    return finish(job)


def run_job(spec: JobSpec, output_dir: Path, cache_dir: Path | None = None) -> int:
    """Run a job, record a failure in error.json, and return the process exit code."""
    rank0 = os.environ.get("RANK", "0") == "0"
    try:
        main(spec, output_dir, cache_dir)
        return ExitCode.OK
    except Interrupted:
        return ExitCode.INTERRUPTED
    except Exception as e:
        tracking.finish_all()
        if rank0:
            try:
                Path(output_dir).mkdir(parents=True, exist_ok=True)
                JobDir(output_dir).write_exception(e)
            except OSError:  # a full disk or a read-only folder: the line below says what happened
                pass
        if isinstance(e, GlueBenchError | OSError):  # a problem the user can fix: one line, no traceback
            print(f"error: {os_error_line(e) if isinstance(e, OSError) else e}", file=sys.stderr)
            return ExitCode.FAILED
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

