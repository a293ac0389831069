"""A job's record of itself: history.jsonl (mirrored to the tracker), its wandb run, and its log file."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path

from glue_bench.method_config import MethodConfig
from glue_bench.results import tracking
from glue_bench.results.job_folder import JobDir, atomic_write_text
from glue_bench.spec import JobSpec
from glue_bench.train.provenance import hardware, library_versions


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
    id_file = JobDir(output_dir).wandb_run_id_path
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    resume = run_id is not None
    if run_id is None:
        import uuid

        run_id = uuid.uuid4().hex[:12]
    tags = [spec.method, spec.task, *MethodConfig.of(spec).tags, *spec.tags]
    config = {**spec.to_dict(), "job_id": spec.job_id, "precision_resolved": precision,
              "versions": library_versions(), "hardware": hardware()}
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


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StripAnsi(logging.Filter):
    """Colour codes out of log lines bound for a file (transformers' load report colours its title even when
    its output is not a terminal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\x1b[" in message:
            record.msg, record.args = ANSI.sub("", message), None
        return True


def setup_logging(output_dir: Path, is_main: bool) -> None:
    if not sys.stderr.isatty():
        import transformers.utils.logging as hf_logging

        for handler in hf_logging.get_logger().handlers:  # the library root logger, configured
            handler.addFilter(StripAnsi())
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not is_main:
        return
    if os.environ.get("GLUE_BENCH_LOG_CAPTURED"):  # an executor already writes our output to train.log
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(JobDir(output_dir).log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(StripAnsi())
    root.addHandler(handler)
    if not any(not isinstance(h, logging.FileHandler) for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(console)
