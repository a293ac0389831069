"""`glue-bench calibrate`: measure how fast a model trains and predicts here, per method family, and store it.

For each method: the model is prepared as a job prepares it (`apply_method`), a few optimizer steps are timed one
by one on real, length-grouped batches of a task after warm-up steps (under the job's own DeepSpeed engine), then
evaluation batches spread over its dev split; a line `seconds = overhead + FLOPs / rate` is fitted to each
(`estimate.fit_rate`). A job's fixed cost is measured by running one real two-step job of the same model and
method in a fresh process (`python -m glue_bench.train`: imports, model load, engine, evaluation, weights and
result files) and subtracting the fitted time of its steps and batches from its wall time.

A hub id whose weights are not on this machine is calibrated from its config with random weights (speed does
not depend on the values) and, when its tokenizer is not here either, BERT's uncased vocabulary (that of the
packaged all-MiniLM-L6-v2) tokenises the batches: the lengths, not the ids, set the cost.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glue_bench.cost.arithmetic import (
    Rate,
    Speed,
    SplitLengths,
    Structure,
    eval_flops_per_token,
    fit_rate,
    job_seconds,
    job_work,
    train_flops_per_token,
)
from glue_bench.cost.calibration import Calibration, cpu_device_name, save_calibration
from glue_bench.errors import GlueBenchError, SpecFieldError
from glue_bench.results.job_folder import JobDir
from glue_bench.spec import JobSpec, default_of
from glue_bench.train import rank_arguments

log = logging.getLogger(__name__)

STAND_IN_TOKENIZER = "sentence-transformers/all-MiniLM-L6-v2"
# Fields a method needs that have no default, set when the bare family does not make a valid spec.
METHOD_FIELD_DEFAULTS = {"bottleneck": 64, "rank": 8, "n_frequency": 1000, "block_size": 16}
BATCH = 32
MAX_LENGTH = 128


@dataclass(frozen=True)
class CalibrationRequest:
    """What `glue-bench calibrate` measures."""

    model: str
    methods: tuple[str, ...] = ("full", "houlsby")
    """Families, each optionally with fields: `houlsby:bottleneck=64`, `lora:rank=8,alpha=16`."""
    device: str = "cpu"
    precision: str = "auto"
    task: str = "rte"
    data: str = "auto"
    steps: int = 8
    warmup: int = 2
    eval_batches: int = 8
    threads: int | None = None
    """CPU: threads per job (default: all cores)."""
    measure_startup: bool = True


def method_spec(item: str, **common) -> JobSpec:
    """A job spec for `family[:field=value,...]`, with the defaults a bare family lacks."""
    family, _, rest = item.partition(":")
    fields: dict = {}
    for pair in filter(None, rest.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise GlueBenchError(f"--method {item}: write fields as name=value, e.g. houlsby:bottleneck=64")
        fields[key.strip()] = _scalar(value.strip())
    for _ in range(len(METHOD_FIELD_DEFAULTS) + 1):
        try:
            return JobSpec(method=family, **common, **fields)
        except SpecFieldError as e:
            if e.field in METHOD_FIELD_DEFAULTS and e.field not in fields:
                fields[e.field] = METHOD_FIELD_DEFAULTS[e.field]
                continue
            raise GlueBenchError(f"--method {item}: {e}") from None
        except TypeError as e:
            raise GlueBenchError(f"--method {item}: {e}") from None
    raise GlueBenchError(f"--method {item}: not a valid method configuration")


def _scalar(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def calibrate(request: CalibrationRequest, cache_dir: Path | None = None) -> list[Calibration]:
    """Measure every requested method and store each calibration; returns them."""
    import torch

    from glue_bench.train.runtime import resolve_precision

    if request.device == "cuda" and not torch.cuda.is_available():
        raise GlueBenchError("--device cuda: torch sees no GPU here; calibrate on the machine that will run jobs")
    if request.steps < 2 or request.warmup < 0:
        raise GlueBenchError(f"--steps {request.steps}: time at least 2 steps (and warm up 0 or more)")
    threads = request.threads or os.cpu_count() or 1
    if request.device == "cpu":
        torch.set_num_threads(threads)
    device_name = torch.cuda.get_device_name() if request.device == "cuda" else cpu_device_name(threads)
    model_dir = Path(tempfile.mkdtemp(prefix=".calibrate-", dir=_cache_root(cache_dir)))
    try:
        source, random_weights = _model_folder(request.model, model_dir)
        out = []
        for item in request.methods:
            spec = method_spec(item, task=request.task, model=source, data=request.data, batch_size=BATCH,
                               max_seq_length=MAX_LENGTH, epochs=1, wandb="disabled",
                               num_gpus=1 if request.device == "cuda" else 0, precision=request.precision)
            precision = resolve_precision(spec, torch.device(request.device))
            entry = _calibrate_one(request, spec, precision, device_name, threads, cache_dir)
            entry = dataclasses.replace(entry, random_weights=random_weights)
            save_calibration(entry, cache_dir)
            out.append(entry)
        return out
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


def _cache_root(cache_dir: Path | None) -> Path:
    from glue_bench.train.data import default_cache_dir

    root = Path(cache_dir or default_cache_dir())
    root.mkdir(parents=True, exist_ok=True)
    return root


def _model_folder(model: str, folder: Path) -> tuple[str, bool]:
    """A model to time: the model itself when its weights load here, else a folder with random weights built
    from its config (and the stand-in tokenizer when its own is not here either). Returns (model, random)."""
    from transformers import AutoModel

    from glue_bench.model_source import is_model_path, resolve_model
    from glue_bench.train.models import load_tokenizer, model_config

    if is_model_path(resolve_model(model)):
        return model, False
    try:
        from glue_bench.tasks import get_task
        from glue_bench.train.models import load_model

        load_model(model, get_task("rte"))  # a hub id whose weights are in the local hub cache
        return model, False
    except GlueBenchError:
        pass
    import torch

    config = model_config(model)
    log.info("%s: weights not here; timing random weights built from its config", model)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    try:
        tokenizer = load_tokenizer(model)
    except GlueBenchError:
        log.info("%s: tokenizer not here; batches tokenised with %s's (BERT uncased) vocabulary", model,
                 STAND_IN_TOKENIZER)
        tokenizer = load_tokenizer(STAND_IN_TOKENIZER)
    tokenizer.save_pretrained(folder)
    return str(folder), True


def _calibrate_one(request: CalibrationRequest, spec: JobSpec, precision: str, device_name: str, threads: int,
                   cache_dir: Path | None) -> Calibration:
    import torch

    from glue_bench.cost.arithmetic import Structure
    from glue_bench.model_source import model_identity
    from glue_bench.tasks import get_task
    from glue_bench.train.data import Padding, TokenCache, resolve_data_source, train_batches
    from glue_bench.train.engine import build_engine
    from glue_bench.train.methods import apply_method
    from glue_bench.train.models import count_shape, load_model, load_tokenizer
    from glue_bench.train.runtime import Run, keep_freed_memory, seed_everything

    task = get_task(spec.task)
    run = Run(spec)
    keep_freed_memory(run.device)
    seed_everything(0)
    tokenizer = load_tokenizer(spec.model)
    cache = TokenCache(cache_dir)
    source = resolve_data_source(spec.data)
    train = cache.encoded(task, "train", source, tokenizer, spec.max_seq_length)
    dev = cache.encoded(task, task.dev_splits[0], source, tokenizer, spec.max_seq_length)
    model = load_model(spec.model, task)
    apply_method(model, spec)
    structure = Structure.from_dict(count_shape(model))
    model.to(run.device)
    total = request.warmup + request.steps
    engine, _ = build_engine(model, spec, run, precision, 1, total)
    collator = Padding.for_tokenizer(tokenizer)
    batches = train_batches(train.lengths, BATCH, 0, 0, True)[:total]
    if len(batches) < total:
        raise GlueBenchError(f"{task.display} has {len(train)} training rows: too few for {total} batches of {BATCH}")
    sync = torch.cuda.synchronize if run.device.type == "cuda" else (lambda: None)
    train_rate, tokens_per_s = _time_training(engine, train, batches, run, collator, structure, request.warmup, sync)
    eval_rate = _time_evaluation(engine.module, dev, collator, structure, run, request.eval_batches, sync)
    del engine, model
    speed = Speed(train_rate, eval_rate, 0.0)
    startup = _startup_seconds(spec, speed, structure, train, dev, threads, cache_dir) if request.measure_startup \
        else 0.0
    config = {k: v for k, v in spec.to_dict().items()
              if k in _method_fields() and v != default_of(k)}
    return Calibration(model=model_identity(request.model), method=spec.method, device=device_name,
                       precision=precision, speed=Speed(train_rate, eval_rate, startup), structure=structure,
                       config=config, tokens_per_s=tokens_per_s, task=task.name,
                       measured_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


def _time_training(engine, train, batches, run, collator, structure, warmup: int, sync) -> tuple[Rate, float]:
    """Optimizer steps timed one by one after `warmup` of them: the fitted rate and non-pad tokens per second."""
    from glue_bench.train.engine import train_step

    engine.train()
    flops, seconds, tokens = [], [], 0
    for i, rows in enumerate(batches):
        sync()
        start = time.perf_counter()
        loss, _ = train_step(engine, train, rows, run, 1, collator)
        float(loss)  # the step's end on the device
        elapsed = time.perf_counter() - start
        if i >= warmup:
            n = int(train.lengths[rows].sum())
            flops.append(n * train_flops_per_token(structure, n / len(rows)))
            seconds.append(elapsed)
            tokens += n
    return fit_rate(flops, seconds), tokens / sum(seconds)


def _time_evaluation(module, dev, collator, structure, run, eval_batches: int, sync) -> Rate:
    """Evaluation batches spread over the dev split's longest-first order, as `prediction.predict` runs them."""
    import torch

    from glue_bench.train.runtime import to_device

    module.eval()
    order = np.argsort(-dev.lengths, kind="stable")
    eval_rows = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
    picks = [eval_rows[j] for j in np.linspace(0, len(eval_rows) - 1, min(len(eval_rows), eval_batches + 1),
                                                dtype=int)]
    eflops, eseconds = [], []
    with torch.no_grad():
        for i, rows in enumerate(picks):
            batch = collator(dev, rows)
            batch.pop("labels")
            elapsed = float("inf")
            for _ in range(2):  # the faster of two passes: a busy machine's noise only ever adds time
                sync()
                start = time.perf_counter()
                module(**to_device(batch, run.device)).logits.float().cpu()
                elapsed = min(elapsed, time.perf_counter() - start)
            if i > 0:  # the first is warm-up
                n = int(dev.lengths[rows].sum())
                eflops.append(n * eval_flops_per_token(structure, n / len(rows)))
                eseconds.append(elapsed)
    return fit_rate(eflops, eseconds)


def _method_fields() -> set[str]:
    from glue_bench.cost.shapes import NOT_STRUCTURAL

    return set(JobSpec.__dataclass_fields__) - NOT_STRUCTURAL - {"method"}


def _startup_seconds(spec: JobSpec, speed: Speed, structure: Structure, train, dev, threads: int,
                     cache_dir: Path | None) -> float:
    """A real two-step job in a fresh process, less the fitted time of its work: the fixed cost of a job."""
    from glue_bench.train.data import subset_rows

    job = spec.replace(max_train_samples=2 * BATCH, max_eval_samples=BATCH, predict_test=False)
    rows = subset_rows(len(train), job.max_train_samples, job.data_seed)
    dev_rows = subset_rows(len(dev), job.max_eval_samples, job.data_seed + 1)
    work = job_work(SplitLengths(len(rows), int(train.lengths[rows].sum()), True),
                    [SplitLengths(len(dev_rows), int(dev.lengths[dev_rows].sum()), True)], [], epochs=1,
                    per_epoch=job.steps_per_epoch(len(rows), 1), eval_batch=job.eval_batch(1))
    with tempfile.TemporaryDirectory(prefix="glue-bench-calibrate-job-") as tmp:
        spec_path = JobDir(tmp).write_spec(job)
        env = {k: v for k, v in os.environ.items()
               if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        env.update(OMP_NUM_THREADS=str(threads), WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
        if cache_dir is not None:
            env["GLUE_BENCH_CACHE"] = str(cache_dir)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, *rank_arguments(spec_path, Path(tmp) / "out")], env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise GlueBenchError(f"the start-up job failed (exit {proc.returncode}): "
                             f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return max(0.0, wall - job_seconds(work, structure, speed))
