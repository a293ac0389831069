"""Read the classic `glue_data/` TSV files exactly as GLUE.md describes them (no torch here).

Every file is read with `quoting=csv.QUOTE_NONE`: quotes occur inside the text and must not merge lines.
A row is malformed when its width differs from the header's (or the documented width), a text field is
missing or a label does not parse; the error names the file and the line. QQP is the one exception:
rows with an empty field are dropped and counted, as the hub loader does.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.tasks import Task

log = logging.getLogger(__name__)

csv.field_size_limit(sys.maxsize)


@dataclass(slots=True)
class SplitData:
    """One split as plain columns: the text fields, `label` and `idx`, plus where it came from."""

    columns: dict[str, list]
    source: dict
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.columns["idx"])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_label(task: Task, value: str) -> int | float:
    if task.is_regression:
        return float(value)
    if task.string_labels:
        if value not in task.label_names:
            raise ValueError(f"label {value!r} is not one of {task.display}'s labels ({', '.join(task.label_names)})")
        return task.label_names.index(value)
    label = int(value)
    if not 0 <= label < task.num_labels:
        raise ValueError(f"label {label} out of range (0..{task.num_labels - 1})")
    return label


def split_file(task: Task, split: str, data_dir: Path) -> Path:
    """The file of one split of a classic glue_data folder; a one-line error if there is none."""
    if split not in task.layouts:
        raise GlueBenchError(f"task {task.name} has no split {split!r}; it has {', '.join(task.layouts)}")
    path = Path(data_dir) / task.layouts[split].path
    if not path.is_file():
        raise GlueBenchError(f"{task.display} {split} split is missing: no file {path}")
    return path


def file_identity(task: Task, split: str, data_dir: Path) -> dict:
    """What a split's rows are a function of, without reading them: its file's name and sha256."""
    path = split_file(task, split, data_dir)
    return {"kind": "glue_data", "file": task.layouts[split].path, "sha256": file_sha256(path)}


def read_split(task: Task, split: str, data_dir: Path) -> SplitData:
    """Rows of one split of a classic glue_data folder, in file order."""
    path = split_file(task, split, data_dir)
    layout = task.layouts[split]
    columns: dict[str, list] = {name: [] for name in task.text_fields}
    columns["label"], columns["idx"] = [], []
    dropped = 0
    labelled = layout.label_column is not None
    # utf-8-sig: the MRPC header starts with a byte-order mark.
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        width = layout.num_columns
        if layout.header:
            header = next(reader, None)
            if header is None:
                raise GlueBenchError(f"{path}: empty file")
            width = width or len(header)
        for row in reader:
            if not row or row == [""]:
                continue
            where = f"{path}:{reader.line_num}"
            if task.name == "qqp" and (len(row) != width or any(not c.strip() for c in row)):
                dropped += 1
                continue
            if width is not None and len(row) != width:
                raise GlueBenchError(f"{where}: malformed row: {len(row)} columns, expected {width}")
            texts = [row[c] for c in layout.text_columns]
            if any(not t.strip() for t in texts):
                raise GlueBenchError(f"{where}: malformed row: empty text field")
            try:
                label = _parse_label(task, row[layout.label_column]) if labelled else -1
                idx = int(row[layout.index_column]) if layout.index_column is not None else len(columns["idx"])
            except (ValueError, IndexError) as e:
                raise GlueBenchError(f"{where}: malformed row: {e}") from None
            for name, text in zip(task.text_fields, texts, strict=True):
                columns[name].append(text)
            columns["label"].append(label)
            columns["idx"].append(idx)
    if dropped:
        log.info("%s: dropped %d rows with an empty field (as the hub loader does)", path, dropped)
    source = {**file_identity(task, split, data_dir), "dropped_rows": dropped}
    return SplitData(columns=columns, source=source, dropped=dropped)
