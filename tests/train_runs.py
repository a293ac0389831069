"""Training through the real `glue-bench train` (tiny random BERT, real GLUE files): its arguments, the SST-2
job the training and tracking tests run, and a job started in the background."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def train_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(model), "--data-dir", str(data), "--output-dir", str(out),
            "--max-seq-length", "64", *extra]


SST2 = ("--task", "sst2", "--method", "houlsby", "--bottleneck", "8", "--learning-rate", "1e-3",
        "--batch-size", "16", "--epochs", "2", "--max-train-samples", "512", "--max-eval-samples", "96")


def wait_for(condition, timeout=300.0):
    start = time.time()
    while not condition():
        if time.time() - start > timeout:
            raise TimeoutError
        time.sleep(0.005)


def start_job(args: list[str], env: dict | None = None) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("glue-bench")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
