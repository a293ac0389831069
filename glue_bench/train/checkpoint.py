"""Checkpoints of the trainable part: `last` (resumable) and `best` (dev weights), world-size free.

A checkpoint is a folder `checkpoints/<kind>-<global step>/` written under a temporary name and renamed
into place, so a crash never leaves half of one; older ones of the same kind are deleted afterwards.
It holds the trainable tensors (`trainable.safetensors`), the AdamW moments per parameter name
(`optimizer.pt`, gathered from ZeRO partitions, so any world size can load them), and `state.pt`
(scheduler, epoch, step, best-so-far, RNG states of every rank).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from glue_bench.train.stop import crash_point

MOMENTS = ("exp_avg", "exp_avg_sq")


def trainable_named_parameters(module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def trainable_state(module) -> dict[str, torch.Tensor]:
    """CPU copies of the trainable tensors, by parameter name."""
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in trainable_named_parameters(module)}


def load_trainable_state(module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved tensors into the module's trainable parameters; the names must match exactly."""
    params = dict(trainable_named_parameters(module))
    if set(params) != set(tensors):
        missing, extra = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        raise ValueError(f"checkpoint does not match the model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name].to(p.device, p.dtype))


def _flat_partitions(engine) -> list[torch.Tensor] | None:
    """The fp32 master partitions of a DeepSpeed ZeRO / bf16 optimizer; None for a plain torch optimizer."""
    opt = engine.optimizer
    for name in ("single_partition_of_fp32_groups", "fp32_groups_flat_partition"):
        if hasattr(opt, name):
            return getattr(opt, name)
    return None


def _link_fragments(engine) -> None:
    """Make every parameter's view into the flat AdamW state valid.

    DeepSpeed links these views once, after the first parameter group's first step, when the other groups
    have no state yet (we have two groups: decay / no decay). Create missing state and link again.
    """
    opt = engine.optimizer
    for flat in _flat_partitions(engine):
        st = opt.optimizer.state[flat]
        if "exp_avg" not in st:
            st.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(flat), exp_avg_sq=torch.zeros_like(flat))
    opt._hp_optimizer_states_linked = False  # private to DeepSpeed 0.19 (pinned in pyproject.toml)
    opt._lazy_init_hp_params_optimizer_state()


def gather_optimizer_state(engine) -> dict:
    """AdamW state by parameter name, whole tensors. A collective under ZeRO: call on every rank."""
    from deepspeed.utils import safe_get_full_optimizer_state

    named = trainable_named_parameters(engine.module)
    state: dict = {"moments": {}, "step": 0}
    flats = _flat_partitions(engine)
    if flats is None:
        for name, p in named:
            st = engine.optimizer.state.get(p, {})
            if st:
                state["moments"][name] = {k: st[k].detach().cpu().clone() for k in MOMENTS}
                state["step"] = int(st["step"])
        return state
    _link_fragments(engine)
    for name, p in named:
        state["moments"][name] = {k: safe_get_full_optimizer_state(p, k).cpu().clone() for k in MOMENTS}
    state["step"] = max(int(engine.optimizer.optimizer.state[f]["step"]) for f in flats)
    return state


def restore_optimizer_state(engine, state: dict) -> None:
    """Put gathered AdamW state (and, under ZeRO, the fp32 master weights) back. Call on every rank."""
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

    named = trainable_named_parameters(engine.module)
    flats = _flat_partitions(engine)
    if flats is None:
        for name, p in named:
            if name in state["moments"]:
                st = {k: v.to(p.device, p.dtype) for k, v in state["moments"][name].items()}
                st["step"] = torch.tensor(float(state["step"]))
                engine.optimizer.state[p] = st
        return
    _link_fragments(engine)
    for name, p in named:
        safe_set_full_fp32_param(p, p.detach().float())
        for k, v in state["moments"].get(name, {}).items():
            safe_set_full_optimizer_state(p, v.to(p.device, torch.float32), k)
    for flat in flats:
        engine.optimizer.optimizer.state[flat]["step"] = torch.tensor(float(state["step"]))


def write_checkpoint(root: Path, kind: str, step: int, tensors: dict[str, torch.Tensor],
                     optimizer: dict | None, state: dict) -> Path:
    """Write `root/<kind>-<step>/` atomically and delete older checkpoints of that kind (rank 0 only)."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".tmp-{kind}-*"):  # left by a process killed while writing one
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"{kind}-{step:08d}"
    tmp = root / f".tmp-{kind}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    save_file(tensors, str(tmp / "trainable.safetensors"))
    if optimizer is not None:
        torch.save(optimizer, tmp / "optimizer.pt")
    crash_point("checkpoint-write")
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in root.glob(f"{kind}-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path, kind: str) -> Path | None:
    found = sorted(p for p in Path(root).glob(f"{kind}-*") if (p / "state.pt").is_file())
    return found[-1] if found else None


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    tensors = load_file(str(path / "trainable.safetensors"))
    optimizer = torch.load(path / "optimizer.pt", weights_only=False) if (path / "optimizer.pt").exists() else None
    return tensors, optimizer, torch.load(path / "state.pt", weights_only=False)


def rng_state() -> dict:
    import random

    import numpy as np

    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
