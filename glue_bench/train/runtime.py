"""One rank's runtime: rank, world and device, the stop flag agreed across ranks, precision, seeding and the
host-side settings a CPU job needs (no DeepSpeed engine here)."""

from __future__ import annotations

import os

import numpy as np
import torch

from glue_bench.errors import GlueBenchError
from glue_bench.process import free_port
from glue_bench.spec import JobSpec
from glue_bench.train import stop

STOP_CHECK_STEPS = 10  # with several ranks, how often they agree on a stop signal


def skip_shm_allreduce_build() -> None:
    """Keep DeepSpeed from JIT-compiling its shared-memory all-reduce op. `TorchBackend.__init__` builds it (1-3
    minutes of C++ on 2 cores on a fresh machine, and again whenever another environment shares the extension
    cache) for its inference all-reduce only: training never calls it, and the backend runs without it (it
    checks `shm_comm_op` for None). Works with DeepSpeed 0.19 (the range pinned in pyproject.toml)."""
    import importlib

    # not `import deepspeed.comm.torch as m`: the package's `from .comm import *` shadows that submodule
    # attribute with torch itself, and the patch would land on torch
    ds_torch = importlib.import_module("deepspeed.comm.torch")
    ds_torch.build_shm_op = lambda: None


class SingleProcess:
    """The `Run` interface for one process without torch.distributed (used by `glue-bench predict`)."""

    rank, world = 0, 1

    def __init__(self, device: torch.device):
        self.device = device

    def gather(self, obj):
        return [obj]


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
        skip_shm_allreduce_build()
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


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
