"""Leaderboard submission zips: written from test predictions, validated before they are written, and a
validator for any zip (no torch here).

The format (GLUE.md): a flat zip with exactly 11 files, each `index<TAB>prediction` plus one line per test
example; 0/1 for CoLA, SST-2, MRPC, QQP and WNLI; label strings for MNLI-m, MNLI-mm, AX, QNLI and RTE;
STS-B as `%.3f` clipped to [0, 5]. The validator reads members into memory only (never extracts), refuses
absolute or `..` names and folders, and caps member sizes and counts.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.results.job_folder import JobDir, umask
from glue_bench.tasks import GLUE_TASKS, TASKS, Task

MAX_MEMBER_BYTES = 64 << 20  # QQP, the largest file, is about 4 MB
MAX_MEMBERS = 64
HEADER = "index\tprediction"
BINARY_TASKS = ("cola", "sst2", "mrpc", "qqp", "wnli")


@dataclass(frozen=True, slots=True)
class SubmissionFile:
    """One file of the zip: which task and test split it holds."""

    name: str
    task: Task
    split: str

    def vocabulary(self) -> set[str] | None:
        """Allowed prediction strings; None for STS-B (a number in [0, 5])."""
        if self.task.is_regression:
            return None
        if self.task.name in BINARY_TASKS:
            return {"0", "1"}
        return set(self.task.label_names)


FILES: dict[str, SubmissionFile] = {
    name: SubmissionFile(name, TASKS[t], split)
    for t in GLUE_TASKS for split, name in TASKS[t].submission_files.items()
}


def format_prediction(task: Task, value: float) -> str:
    """A prediction as the leaderboard wants it: 0/1, a label string, or STS-B `%.3f` clipped to [0, 5]."""
    if task.is_regression:
        return f"{min(5.0, max(0.0, float(value))):.3f}"
    label = int(value)
    return str(label) if task.name in BINARY_TASKS else task.label_names[label]


def expected_rows(data_dir: Path | None) -> dict[str, list[int]]:
    """Index values each file must hold: the test files' index column in `data_dir`, else 0..N-1 (official)."""
    from glue_bench.glue_files import read_split

    out = {}
    for name, f in FILES.items():
        if data_dir is not None and (Path(data_dir) / f.task.layouts[f.split].path).is_file():
            out[name] = read_split(f.task, f.split, Path(data_dir)).columns["idx"]
        else:
            out[name] = list(range(f.task.sizes[f.split]))
    return out


def check_file(name: str, text: str, indices: list[int]) -> list[str]:
    """Problems of one member (empty when it is valid)."""
    f = FILES[name]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return ["empty file"]
    problems = []
    if lines[0].rstrip("\r") != HEADER:
        problems.append(f"header is {lines[0][:40]!r}, expected 'index<TAB>prediction'")
    rows = lines[1:]
    if len(rows) != len(indices):
        problems.append(f"{len(rows)} rows, expected {len(indices)}")
    seen: set[int] = set()
    vocab = f.vocabulary()
    bad_values: list[str] = []
    for lineno, line in enumerate(rows, start=2):
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 2:
            problems.append(f"line {lineno}: {len(parts)} columns, expected 2")
            break
        index, value = parts
        try:
            i = int(index)
        except ValueError:
            problems.append(f"line {lineno}: index {index[:20]!r} is not an integer")
            break
        if i in seen:
            problems.append(f"line {lineno}: index {i} appears twice")
            break
        seen.add(i)
        if vocab is None:
            try:
                x = float(value)
            except ValueError:
                x = math.nan
            if not math.isfinite(x) or not 0.0 <= x <= 5.0:
                bad_values.append(f"line {lineno}: {value[:20]!r} is not a number in [0, 5]")
        elif value not in vocab:
            bad_values.append(f"line {lineno}: {value[:30]!r} not in {{{', '.join(sorted(vocab))}}}")
    if bad_values:
        problems.append(bad_values[0] + (f" (and {len(bad_values) - 1} more)" if len(bad_values) > 1 else ""))
    if not problems:
        missing = set(indices) - seen
        extra = seen - set(indices)
        if missing:
            problems.append(f"{len(missing)} indices missing (first {min(missing)})")
        if extra:
            problems.append(f"{len(extra)} unexpected indices (first {min(extra)})")
    return problems


def read_members(zip_bytes_or_path) -> dict[str, str]:
    """The zip's members as text, refusing hostile or malformed archives with a GlueBenchError."""
    try:
        archive = zipfile.ZipFile(zip_bytes_or_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise GlueBenchError(f"not a readable zip file ({e})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise GlueBenchError(f"{len(infos)} members; a submission has 11")
        members = {}
        for info in infos:
            name = info.filename
            if name.startswith("/") or "\\" in name or ".." in name.split("/") or Path(name).is_absolute():
                raise GlueBenchError(f"unsafe member name {name!r}")
            if info.is_dir() or "/" in name:
                raise GlueBenchError(f"member {name!r} is in a folder; the zip must be flat")
            if info.file_size > MAX_MEMBER_BYTES:
                raise GlueBenchError(f"member {name!r} is {info.file_size} bytes, over the {MAX_MEMBER_BYTES} cap")
            with archive.open(info) as f:
                data = f.read(MAX_MEMBER_BYTES + 1)  # the declared size can lie
            if len(data) > MAX_MEMBER_BYTES:
                raise GlueBenchError(f"member {name!r} is over the {MAX_MEMBER_BYTES}-byte cap")
            try:
                members[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise GlueBenchError(f"member {name!r} is not UTF-8 text") from None
        return members


def validate_members(members: dict[str, str], data_dir: Path | None = None,
                     allow_partial: bool = False) -> tuple[dict[str, list[str]], list[str]]:
    """(problems per known file, problems of the zip as a whole). Valid when both are empty."""
    overall = []
    unknown = sorted(set(members) - set(FILES))
    for name in unknown:
        overall.append(f"unexpected file {name!r} (allowed: {', '.join(FILES)})")
    missing = [n for n in FILES if n not in members]
    if missing and not allow_partial:
        overall.append(f"missing {', '.join(missing)}")
    indices = expected_rows(data_dir)
    per_file = {name: check_file(name, text, indices[name]) for name, text in members.items() if name in FILES}
    return per_file, overall


def validate_zip(path: Path, data_dir: Path | None = None, allow_partial: bool = False
                 ) -> tuple[dict[str, list[str]], list[str]]:
    try:
        members = read_members(path)
    except GlueBenchError as e:
        return {}, [str(e)]
    return validate_members(members, data_dir, allow_partial)


def read_predictions(path: Path) -> list[tuple[int, float]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        if line.strip():
            idx, pred = line.split("\t")[:2]
            rows.append((int(idx), float(pred)))
    return rows


def build_members(chosen: dict[str, Path], wnli_majority: bool, data_dir: Path | None) -> dict[str, str]:
    """File name -> content, from the chosen job folder per task."""
    members = {}
    for task_name, folder in chosen.items():
        task = TASKS[task_name]
        for split, name in task.submission_files.items():
            rows = read_predictions(JobDir(folder).prediction_path(split))
            lines = [HEADER] + [f"{i}\t{format_prediction(task, p)}" for i, p in sorted(rows)]
            members[name] = "\n".join(lines) + "\n"
    if wnli_majority:
        indices = expected_rows(data_dir)["WNLI.tsv"]
        members["WNLI.tsv"] = "\n".join([HEADER] + [f"{i}\t0" for i in indices]) + "\n"
    return members


def write_zip(members: dict[str, str], out: Path) -> None:
    """Write a flat zip atomically: a temporary file in the same folder, then a rename."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in [n for n in FILES if n in members]:
                archive.writestr(name, members[name])
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def zip_bytes(members: dict[str, str]) -> bytes:
    """A zip in memory (tests build corrupted zips with it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()
