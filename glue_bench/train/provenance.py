"""Where a result came from: the git commit, library versions, the model's weights hash, and a digest of the
frozen weights that proves training left them bit-identical."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from glue_bench.model_source import folder_weights_hash, resolve_model


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


def frozen_digest(model) -> str:
    """sha256 over every frozen parameter's bytes: proves they come out of training bit-identical."""
    import hashlib

    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
