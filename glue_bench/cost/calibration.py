"""Calibrations: measured speeds per (model identity, method family, device name, precision), kept in one small
file under the cache folder (`<cache>/calibration.json`), and the stated fallbacks used without one (no torch).

`glue-bench calibrate` writes an entry (glue_bench/calibrate.py measures it); `plan --estimate`, the live
view's ETA and `status` read them. A calibration of one method configuration (houlsby m=64) prices another of
the same family (m=8) through its FLOPs: the fitted FLOP rate and per-batch overheads are kept, the FLOPs per
token are those of the other configuration.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.cost.arithmetic import Rate, Speed, Structure
from glue_bench.errors import GlueBenchError
from glue_bench.results import schemas
from glue_bench.results.job_folder import atomic_write_json, read_json

FILE = "calibration.json"

# Dense bf16 matmul peak (FLOP/s, without sparsity) of common GPUs, from the vendors' data sheets; the FLOP
# fallback prices a GPU job at FLOP_FRACTION of it. V100 has no bf16: its fp16 rate.
GPU_PEAK_FLOPS = {"h100": 989e12, "h200": 989e12, "b200": 2250e12, "a100": 312e12, "l40s": 362e12,
                  "a10": 125e12, "l4": 121e12, "v100": 125e12}
DEFAULT_GPU = "h100"
FLOP_FRACTION = 0.3
# A BERT-base step at batch 32 is bound by the host launching kernels: all-MiniLM-L6-v2 (6 layers) took 19 ms
# per optimizer step in bf16 on an H200 (README, Performance: 1,653 examples/s at batch 32), 3.2 ms per
# layer. The fallback never prices a step below that floor (a forward-only batch: a third of it).
GPU_STEP_FLOOR_PER_LAYER_S = 0.0032
GPU_EVAL_FLOOR_PER_LAYER_S = GPU_STEP_FLOOR_PER_LAYER_S / 3
# CPU fallback: fp32 at half of 90 GFLOP/s per thread (this project's 2-core AMD EPYC measured 179 GFLOP/s of
# fp32 matmul on 2 threads and ran full fine-tuning at 53% of it).
CPU_FLOPS_PER_THREAD = 45e9
# Fixed seconds per job without a calibration: process start and imports, model load, engine, the weights
# and result files (a GPU job also loads CUDA).
FALLBACK_STARTUP_S = {"cpu": 15.0, "cuda": 30.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """One measured speed: a method configuration of a model on a device in a precision."""

    model: str
    """Model identity (hub id, or sha256 of a folder's weights): what the speed was measured for."""
    method: str
    """Method family (`full`, `houlsby`, ...)."""
    device: str
    """Device name: the GPU's name, or the CPU's model with its thread count."""
    precision: str
    """fp32, bf16 or fp16."""
    speed: Speed
    """Fitted training and evaluation rates and the fixed seconds per job."""
    structure: Structure
    """The calibrated configuration's matmul weights (what FLOP scaling starts from)."""
    config: dict = field(default_factory=dict)
    """The method fields of the calibrated configuration (e.g. bottleneck 64)."""
    tokens_per_s: float = 0.0
    """Measured non-pad training tokens per second on the calibration batches."""
    task: str = ""
    """Task whose real batches were timed."""
    random_weights: bool = False
    """Timed with random weights built from the model's config (speed does not depend on the values)."""
    measured_at: str = ""
    """When (ISO time)."""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.method, self.device, self.precision)

    def describe(self) -> str:
        what = f"{self.method}" + "".join(f" {k}={v}" for k, v in self.config.items())
        return (f"calibration of {self.model} {what} on {self.device} ({self.precision}), measured "
                f"{self.measured_at[:10] or '?'} on {self.task or '?'}: {self.tokens_per_s:,.0f} training "
                f"tokens/s" + (", random weights" if self.random_weights else ""))

    def to_dict(self) -> dict:
        return {"model": self.model, "method": self.method, "device": self.device, "precision": self.precision,
                "train": self.speed.train.to_dict(), "eval": self.speed.eval.to_dict(),
                "startup_s": self.speed.startup_s, "structure": self.structure.to_dict(), "config": self.config,
                "tokens_per_s": self.tokens_per_s, "task": self.task, "random_weights": self.random_weights,
                "measured_at": self.measured_at}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(model=d["model"], method=d["method"], device=d["device"], precision=d["precision"],
                   speed=Speed(Rate.from_dict(d["train"]), Rate.from_dict(d["eval"]), float(d["startup_s"])),
                   structure=Structure.from_dict(d["structure"]), config=dict(d.get("config") or {}),
                   tokens_per_s=float(d.get("tokens_per_s", 0.0)), task=d.get("task", ""),
                   random_weights=bool(d.get("random_weights", False)), measured_at=d.get("measured_at", ""))


def calibration_path(cache_dir: Path | None = None) -> Path:
    from glue_bench.train.data import default_cache_dir

    return Path(cache_dir or default_cache_dir()) / FILE


def load_calibrations(cache_dir: Path | None = None) -> list[Calibration]:
    """Every stored calibration (none when the file is missing; a damaged file is an error saying so)."""
    path = calibration_path(cache_dir)
    if not path.exists():
        return []
    data = read_json(path)
    try:
        return [Calibration.from_dict(e) for e in data["entries"]]
    except (TypeError, KeyError, ValueError):
        raise GlueBenchError(f"{path} is not a valid calibration file; delete it and run glue-bench calibrate "
                             "again") from None


def save_calibration(entry: Calibration, cache_dir: Path | None = None) -> Path:
    """Add or replace (same key) one calibration; the file is rewritten atomically."""
    path = calibration_path(cache_dir)
    kept = [c for c in load_calibrations(cache_dir) if c.key != entry.key]
    atomic_write_json(path, {"schema_version": schemas.CALIBRATIONS, "entries": [c.to_dict() for c in kept + [entry]]})
    return path


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def cpu_device_name(threads: int) -> str:
    """The device name of a CPU calibration: the model and the threads one job gets."""
    return f"{cpu_name()} ({threads} thread{'s' if threads != 1 else ''})"


def threads_per_slot(slots: int) -> int:
    """Threads each of `slots` CPU slots gets (as the local executor splits the cores)."""
    return max(1, (os.cpu_count() or 1) // max(1, slots))


@dataclass(frozen=True, slots=True)
class Target:
    """The device a sweep is priced for."""

    kind: str
    """`cpu` or `cuda`."""
    name: str
    """Device name a calibration must match (a GPU type such as `h100` matches names that contain it)."""
    threads: int = 1
    """CPU: threads per job."""
    precision: str = "fp32"

    @classmethod
    def cpu(cls, slots: int = 1) -> Target:
        threads = threads_per_slot(slots)
        return cls("cpu", cpu_device_name(threads), threads, "fp32")

    @classmethod
    def cuda(cls, gpu_type: str | None = None, precision: str = "bf16") -> Target:
        return cls("cuda", (gpu_type or DEFAULT_GPU).lower(), 1, precision)

    def matches(self, device: str) -> bool:
        if self.kind == "cpu":
            return device == self.name
        return self.name.replace("-", "").replace(" ", "") in device.lower().replace("-", "").replace(" ", "")


def find_calibration(calibrations: list[Calibration], model: str, method: str, target: Target) -> Calibration | None:
    """The calibration of the same model, method family and device (precision too), newest first."""
    found = [c for c in calibrations if c.model == model and c.method == method and c.precision == target.precision
             and target.matches(c.device)]
    return max(found, key=lambda c: c.measured_at) if found else None


def fallback_speed(target: Target, layers: int) -> Speed:
    """The stated FLOP-based speed used without a calibration (see the constants above)."""
    if target.kind == "cpu":
        rate = CPU_FLOPS_PER_THREAD * target.threads
        return Speed(Rate(0.0, rate), Rate(0.0, rate), FALLBACK_STARTUP_S["cpu"])
    gpu = next((k for k in GPU_PEAK_FLOPS if k in target.name.replace("-", "")), None)
    if gpu is None:
        raise GlueBenchError(f"--gpu-type {target.name}: unknown; choose one of {', '.join(GPU_PEAK_FLOPS)}")
    rate = FLOP_FRACTION * GPU_PEAK_FLOPS[gpu]
    return Speed(Rate(GPU_STEP_FLOOR_PER_LAYER_S * layers, rate), Rate(GPU_EVAL_FLOOR_PER_LAYER_S * layers, rate),
                 FALLBACK_STARTUP_S["cuda"])


def describe_fallback(target: Target, model: str) -> str:
    if target.kind == "cpu":
        how = (f"FLOP estimate at {CPU_FLOPS_PER_THREAD / 1e9:.0f} GFLOP/s fp32 per thread x {target.threads}, "
               f"{FALLBACK_STARTUP_S['cpu']:.0f} s start-up per job")
        make = f"glue-bench calibrate --model {model} --device cpu --threads {target.threads}"
    else:
        gpu = next((k for k in GPU_PEAK_FLOPS if k in target.name.replace("-", "")), target.name)
        how = (f"FLOP estimate at {FLOP_FRACTION:.0%} of the {gpu.upper()} bf16 matmul rate "
               f"({GPU_PEAK_FLOPS.get(gpu, 0) / 1e12:.0f} TFLOP/s), at least "
               f"{GPU_STEP_FLOOR_PER_LAYER_S * 1e3:.1f} ms per layer per step, "
               f"{FALLBACK_STARTUP_S['cuda']:.0f} s start-up per job")
        make = f"glue-bench calibrate --model {model} --device cuda"
    return f"no calibration: {how}; to measure one: {make}"
