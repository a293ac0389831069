"""The training side's runtime (glue_bench/train/runtime.py): no unused C++ build of DeepSpeed, freed memory kept
on CPU only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

PACKAGE = Path(__file__).resolve().parents[1] / "glue_bench"


SHM_PROBE = textwrap.dedent("""
    import json, os, sys
    from deepspeed.ops.op_builder.builder import OpBuilder

    built = []
    original = OpBuilder.load

    def load(self, *args, **kwargs):
        built.append(self.NAME)
        return original(self, *args, **kwargs)

    OpBuilder.load = load
    from glue_bench.train.runtime import Run
    from glue_bench.spec import JobSpec

    run = Run(JobSpec(task="rte", model="unused", num_gpus=0))
    print(json.dumps({"built": built, "world": run.world}))
""")


def test_run_does_not_build_deepspeed_shm_allreduce(tmp_path):
    """`deepspeed.init_distributed` would JIT-compile the shared-memory all-reduce op (minutes on 2 cores)."""
    extensions = tmp_path / "torch_extensions"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["TORCH_EXTENSIONS_DIR"] = str(extensions)
    proc = subprocess.run([sys.executable, "-c", SHM_PROBE], capture_output=True, text=True, timeout=300, env=env,
                          cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"built": [], "world": 1}
    assert not list(extensions.rglob("deepspeed_shm_comm*"))


def test_keep_freed_memory_on_cpu_only():
    from glue_bench.train.runtime import keep_freed_memory

    assert keep_freed_memory(torch.device("cpu")) is True  # Linux/glibc here
    assert keep_freed_memory(torch.device("cuda")) is False
