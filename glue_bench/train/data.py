"""Data: load a split (hub or glue_data folder) -> tokenise once into a shared cache -> batches.

Both sources give the same columns: the task's text fields, `label` (-1 on test splits) and `idx`.
The tokenised splits live in an on-disk cache keyed by (task, split, data fingerprint, tokenizer,
max length); a new entry is written to a private temporary folder and renamed into place, so
concurrent jobs share it safely and nobody ever reads half an entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glue_bench.errors import GlueBenchError
from glue_bench.glue_files import SplitData, file_identity, read_split
from glue_bench.tasks import HUB_DATASET, HUB_SPLITS, Task

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: glue_data entries keyed by the file's sha256, found without parsing the file
KEY_FILE = "glue_bench_key.json"


def resolve_data_source(data: str | None) -> str:
    """`hub` or the path of a glue_data folder; `auto` means GLUE_DATA_DIR when set, else the hub."""
    if data in (None, "", "auto"):
        data = os.environ.get("GLUE_DATA_DIR") or "hub"
    if data == "hub":
        return "hub"
    path = Path(data).expanduser()
    if not path.is_dir():
        raise GlueBenchError(f"data folder {path} does not exist; pass --data-dir to a glue_data folder")
    return str(path.resolve())


def default_cache_dir() -> Path:
    if os.environ.get("GLUE_BENCH_CACHE"):
        return Path(os.environ["GLUE_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "glue-bench"


def load_split(task: Task, split: str, source: str) -> SplitData:
    """One split as columns, from the hub (`source == "hub"`) or a glue_data folder."""
    if source == "hub":
        return _load_hub_split(task, split)
    return read_split(task, split, Path(source))


def _load_hub_split(task: Task, split: str) -> SplitData:
    import datasets

    config = task.hub_config(split)
    try:
        ds = datasets.load_dataset(HUB_DATASET, config, split=HUB_SPLITS[split])
    except Exception as e:  # the hub client raises many types for "unreachable"
        raise GlueBenchError(
            f"cannot load {HUB_DATASET}/{config} from the Hugging Face hub ({type(e).__name__}); "
            "pass --data-dir to a glue_data folder (or set GLUE_DATA_DIR)"
        ) from None
    return hub_dataset_to_split(task, ds)


def hub_dataset_to_split(task: Task, ds) -> SplitData:
    """Columns of a hub `nyu-mll/glue` split, with the same names and types as a glue_data split."""
    columns = {name: list(ds[name]) for name in task.text_fields}
    columns["label"] = [float(x) if task.is_regression else int(x) for x in ds["label"]]
    columns["idx"] = [int(x) for x in ds["idx"]]
    revision = None
    for f in getattr(ds, "cache_files", None) or []:
        parts = Path(f["filename"]).parts
        revision = parts[-2] if len(parts) >= 2 else None
    source = {"kind": "hub", "dataset": HUB_DATASET, "config": ds.info.config_name, "revision": revision,
              "fingerprint": getattr(ds, "_fingerprint", None)}
    return SplitData(columns=columns, source=source)


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)  # call-time settings, changed by every tokenizer(...) call
        state.pop("padding", None)
        blob = json.dumps(state, sort_keys=True)
    else:
        blob = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256((type(tokenizer).__name__ + blob).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Encoded:
    """A tokenised split: every example's token ids in one flat array (memory-mapped from the cache), each
    example a [start, end) slice of it, plus labels and indices. `select` makes a view, copying no tokens."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    types: np.ndarray | None  # token type ids, laid out as `ids`; None for tokenizers without them
    labels: np.ndarray
    idx: np.ndarray
    source: dict

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    @property
    def input_ids(self) -> list[list[int]]:
        return [self.ids[s:e].tolist() for s, e in zip(self.starts, self.ends, strict=True)]

    @property
    def token_type_ids(self) -> list[list[int]] | None:
        if self.types is None:
            return None
        return [self.types[s:e].tolist() for s, e in zip(self.starts, self.ends, strict=True)]

    def select(self, rows: np.ndarray) -> Encoded:
        return Encoded(self.ids, self.starts[rows], self.ends[rows], self.types, self.labels[rows], self.idx[rows],
                       self.source)


def _flat_lists(table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A list<int> column of an Arrow table as (flat values, offsets), without a copy where Arrow allows."""
    column = table.column(name).combine_chunks()
    offsets = column.offsets.to_numpy().astype(np.int64)
    return column.values.to_numpy(), offsets


@dataclass(frozen=True)
class Padding:
    """Dynamic padding: a batch of rows padded to its longest row, on the tokenizer's padding side, as torch
    tensors (input_ids, attention_mask, token_type_ids when the tokenizer has them, labels)."""

    pad_token_id: int
    left: bool = False

    @classmethod
    def for_tokenizer(cls, tokenizer) -> Padding:
        return cls(int(tokenizer.pad_token_id), getattr(tokenizer, "padding_side", "right") == "left")

    def __call__(self, encoded: Encoded, rows: np.ndarray) -> dict:
        import torch

        starts = encoded.starts[rows]
        lengths = encoded.ends[rows] - starts
        width = int(lengths.max())
        positions = np.arange(width)
        mask = positions >= width - lengths[:, None] if self.left else positions < lengths[:, None]
        offset = positions - (width - lengths[:, None]) if self.left else positions
        take = (starts[:, None] + offset)[mask]
        ids = np.full(mask.shape, self.pad_token_id, dtype=np.int64)
        ids[mask] = encoded.ids[take]
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}
        if encoded.types is not None:
            types = np.zeros(mask.shape, dtype=np.int64)
            types[mask] = encoded.types[take]
            batch["token_type_ids"] = torch.from_numpy(types)
        batch["labels"] = torch.from_numpy(encoded.labels[rows])
        return batch


class TokenCache:
    """Tokenised splits on disk (Arrow, memory-mapped), shared by every job on the machine."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def encoded(self, task: Task, split: str, source: str, tokenizer, max_length: int) -> Encoded:
        import datasets

        datasets.disable_progress_bars()

        # A glue_data split is identified by its file's hash, so a hit needs no parsing (seconds for MNLI and
        # QQP at every job start); a hub split is identified by the loaded dataset's fingerprint.
        raw = load_split(task, split, source) if source == "hub" else None
        identity = raw.source if raw is not None else file_identity(task, split, Path(source))
        entry, key_data = self._entry(task, split, identity, tokenizer_fingerprint(tokenizer), max_length)
        if entry.is_dir():
            self.hits += 1
            ds = datasets.load_from_disk(str(entry))
            read = json.loads((entry / KEY_FILE).read_text())["read"]  # as the reader described the rows
        else:
            self.misses += 1
            raw = raw if raw is not None else load_split(task, split, source)
            ds = self._tokenize(task, raw, tokenizer, max_length)
            read = raw.source
            self._publish(ds, entry, {**key_data, "read": read})
        table = ds.data  # Arrow, memory-mapped from the cache: no per-row Python objects
        ids, offsets = _flat_lists(table, "input_ids")
        types = _flat_lists(table, "token_type_ids")[0] if "token_type_ids" in ds.column_names else None
        labels = table.column("label").to_numpy().astype(np.float32 if task.is_regression else np.int64)
        idx = table.column("idx").to_numpy().astype(np.int64)
        return Encoded(ids, offsets[:-1], offsets[1:], types, labels, idx, read)

    def lengths(self, task: Task, split: str, source: str, tokenizer_id: str, max_length: int) -> np.ndarray | None:
        """Non-pad lengths of a split already in the cache, or None when it is not there (or comes from the hub):
        what pricing needs, without a tokenizer, without parsing the TSV file and without counting a miss."""
        if source == "hub":
            return None
        try:
            identity = file_identity(task, split, Path(source))
        except (OSError, GlueBenchError):
            return None
        entry, _ = self._entry(task, split, identity, tokenizer_id, max_length)
        if not entry.is_dir():
            return None
        import datasets

        datasets.disable_progress_bars()
        _, offsets = _flat_lists(datasets.load_from_disk(str(entry)).data, "input_ids")
        return offsets[1:] - offsets[:-1]

    def _entry(self, task: Task, split: str, identity: object, tokenizer_id: str,
               max_length: int) -> tuple[Path, dict]:
        """The cache folder of a split and what its key file records."""
        key_data = {"format": CACHE_FORMAT, "task": task.name, "split": split, "source": identity,
                    "tokenizer": tokenizer_id, "max_length": max_length}
        key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / f"{task.name}-{split}-{max_length}-{key}", key_data

    @staticmethod
    def _tokenize(task: Task, raw: SplitData, tokenizer, max_length: int):
        import datasets

        texts = [raw.columns[name] for name in task.text_fields]
        enc = tokenizer(*texts, truncation=True, max_length=max_length, return_attention_mask=False)
        columns = {"input_ids": enc["input_ids"], "label": raw.columns["label"], "idx": raw.columns["idx"]}
        if "token_type_ids" in enc:
            columns["token_type_ids"] = enc["token_type_ids"]
        return datasets.Dataset.from_dict(columns)

    def _publish(self, ds, entry: Path, key_data: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        ds.save_to_disk(str(tmp))
        (tmp / KEY_FILE).write_text(json.dumps(key_data, indent=2))
        try:
            os.rename(tmp, entry)  # atomic; fails if a concurrent job published first
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)


def subset_rows(n: int, size: int | None, seed: int) -> np.ndarray:
    """Rows of a random subset of `size` (all rows when None or larger), in file order."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def train_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                  group_by_length: bool) -> list[np.ndarray]:
    """The global batches of one epoch: a pure function of (seed, epoch), so resuming needs no state.

    With `group_by_length`, examples are shuffled, cut into mega-batches of 50 batches, sorted by
    length inside each and batched, and the batch order shuffled: similar lengths share a batch
    (little padding) while the epoch stays random.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        mega = 50 * batch_size
        chunks = [order[i:i + mega] for i in range(0, len(order), mega)]
        order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in chunks])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def rank_micro_batches(batch: np.ndarray, world_size: int, rank: int, accum: int) -> list[np.ndarray]:
    """This rank's `accum` micro-batches of one global batch (empty if the batch is too small to split)."""
    if len(batch) < world_size * accum:
        return []
    parts = np.array_split(batch, world_size * accum)
    return parts[rank * accum:(rank + 1) * accum]


def eval_batches(lengths: np.ndarray, world_size: int, rank: int, batch_size: int) -> list[np.ndarray]:
    """This rank's shard of an evaluation split, longest first, in batches of similar length."""
    order = np.argsort(-lengths, kind="stable")[rank::world_size]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
