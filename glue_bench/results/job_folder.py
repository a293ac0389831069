"""A job's results folder: its files, their schemas (docs/results.md), atomic writes and "done".

`JobDir` is the one owner of a job's folder: its paths, the one writer of `spec.json` and `error.json`, the
move-aside of old results, the one-line error summary, and `is_done`, the one definition of a finished job
that executors, status, report and submit all use.

"Done" is cheap: a job records, when it writes `metrics.json`, the row count, byte size and sha256 of each
prediction file (`prediction_files`), so the check is one small JSON read and a `stat` per file. The full
check (rows and sha256) is `is_done(verify=True)`. A `metrics.json` written before `prediction_files`
existed is checked the slow way, by counting rows, so old results stay done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glue_bench.results import schemas
from glue_bench.results.record import MetricsRecord, is_current
from glue_bench.tasks import TASKS

if TYPE_CHECKING:
    from glue_bench.spec import JobSpec

LOG_TAIL_LINES = 40


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the whole new one, never a part."""
    atomic_write_bytes(path, text.encode())


def umask() -> int:
    """The process umask, read without changing it where Linux tells it (`os.umask` sets it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, with the permissions a plain `open` would give (mkstemp's are 0600:
    colleagues sharing a results folder could not read the results)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def follow_umask(folder: Path) -> None:
    """Give every file under `folder` the permissions a plain `open` would (safetensors writes 0600: colleagues
    sharing a results folder could not load the weights)."""
    mode = 0o666 & ~umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def prediction_rows(path: Path) -> int | None:
    """Data rows of a predictions file (header excluded), or None if it is missing or has no header."""
    try:
        with Path(path).open() as f:
            if not f.readline().startswith("idx\tprediction"):
                return None
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


def write_prediction_file(path: Path, header: str, lines: list[str]) -> dict:
    """Write a predictions TSV atomically; returns what "complete" means for it (rows, bytes, sha256)."""
    data = ("\n".join([header, *lines]) + "\n").encode()
    atomic_write_bytes(path, data)
    return {"rows": len(lines), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def load_metrics(result_dir: Path) -> dict | None:
    """metrics.json if it exists and has the current schema, else None."""
    metrics = read_json(JobDir(result_dir).metrics_path)
    return metrics if is_current(metrics) else None


def expected_predictions(metrics: dict) -> tuple[str, ...]:
    """The prediction files a finished job must have: every dev split, and the test splits if asked (a job that
    ASHA pruned predicts dev only)."""
    task = TASKS.get(metrics.get("task"))
    if task is None:
        return ("?",)
    spec = metrics.get("spec") or {}
    with_test = spec.get("predict_test", True) and not metrics.get("pruned")
    return task.dev_splits + (task.test_splits if with_test else ())


def metrics_complete(result_dir: Path, metrics: dict | None, verify: bool = False) -> bool:
    """Whether `metrics` (read from `result_dir`) describes a finished job whose prediction files are whole."""
    return metrics is not None and incomplete_file(result_dir, metrics, verify) is None


def incomplete_file(result_dir: Path, metrics: dict, verify: bool = False) -> str | None:
    """What keeps a finished job's record from being whole, naming the file (None when it is whole): the one
    verdict that `status`, `run`, `report` and `submit` all give."""
    job = JobDir(result_dir)
    predictions = metrics["predictions"]
    if not isinstance(predictions, dict):
        return f"{job.metrics_path.name} lists no prediction files"
    missing = [s for s in expected_predictions(metrics) if s not in predictions]
    if missing:
        return f"{job.metrics_path.name} lists no predictions of {', '.join(missing)}"
    files = metrics.get("prediction_files")
    if not isinstance(files, dict) or set(files) != set(predictions):  # written before prediction_files
        for split, rows in predictions.items():
            found = prediction_rows(job.prediction_path(split))
            if found != rows:
                return f"{_relative(job, job.prediction_path(split))} has {found} rows, {rows} recorded"
        return None
    for split, expected in files.items():
        path = job.prediction_path(split)
        name = _relative(job, path)
        try:
            size = path.stat().st_size
            if size != expected["bytes"]:
                return f"{name} is {size:,} bytes, {job.metrics_path.name} recorded {expected['bytes']:,}"
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, TypeError, KeyError) as e:
            return f"{name} cannot be checked ({type(e).__name__})"
        if verify:
            rows = prediction_rows(path)
            if rows != expected["rows"]:
                return f"{name} has {rows} rows, {job.metrics_path.name} recorded {expected['rows']}"
            if file_sha256(path) != expected["sha256"]:
                return f"{name} was changed after the job wrote it (its sha256 differs from the record)"
    return None


def _relative(job: JobDir, path: Path) -> str:
    return str(path.relative_to(job.path))


def is_done(result_dir: Path, verify: bool = False) -> bool:
    """A job is done when metrics.json is valid and every prediction file it lists is complete (sizes by
    `stat`; `verify`: rows and sha256 as well)."""
    return metrics_complete(result_dir, load_metrics(result_dir), verify)


def error_line(error: Any, limit: int = 300) -> str:
    """The one-line summary of an error.json record: `Type: first line of the message`."""
    if not isinstance(error, dict):
        return "error.json is not readable"
    return f"{error.get('type')}: {error.get('message')}".splitlines()[0][:limit]


def _log_tail(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


class JobDir:
    """One job's results folder `results/<sweep>/<job-id>/` and the one writer of its files."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    spec_path = property(lambda self: self.path / "spec.json")
    metrics_path = property(lambda self: self.path / "metrics.json")
    error_path = property(lambda self: self.path / "error.json")
    log_path = property(lambda self: self.path / "train.log")
    history_path = property(lambda self: self.path / "history.jsonl")
    predictions_dir = property(lambda self: self.path / "predictions")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    claim_path = property(lambda self: self.path / "claim")
    wandb_run_id_path = property(lambda self: self.path / "wandb_run_id")
    model_dir = property(lambda self: self.path / "model")  # full fine-tuning's weights (`save_pretrained`)
    adapter_path = property(lambda self: self.path / "adapter.safetensors")  # every other method's
    peft_dir = property(lambda self: self.path / "peft")  # peft's own folder of a peft method's weights
    eval_predictions_dir = property(lambda self: self.path / "eval_predictions")  # every evaluation's dev predictions

    def prediction_path(self, split: str) -> Path:
        return self.predictions_dir / f"{split}.tsv"

    def eval_prediction_path(self, split: str, step: int) -> Path:
        """The dev predictions of the evaluation at optimizer step `step` (a .npy array in idx order)."""
        return self.eval_predictions_dir / f"{split}-step{step:07d}.npy"

    def later_prediction_path(self, split: str) -> Path:
        """Where `glue-bench predict` writes a split predicted later from the saved weights."""
        return self.path / "predict" / f"{split}.tsv"

    # -- reading -------------------------------------------------------------------------------------------
    def is_done(self, verify: bool = False) -> bool:
        return is_done(self.path, verify)

    def metrics(self) -> dict | None:
        return load_metrics(self.path)

    def problem(self, verify: bool = False) -> str | None:
        """Why a job that wrote metrics.json is not done, naming the file: a corrupt metrics.json, or a
        prediction file that is missing, cut short or changed. None when it is done or never finished."""
        if not self.metrics_path.is_file():
            return None
        metrics = self.metrics()
        if metrics is None:
            return (f"{self.metrics_path.name} is corrupt (not JSON, or not schema {schemas.METRICS} with the keys "
                    "every reader needs)")
        return incomplete_file(self.path, metrics, verify)

    def read_spec(self) -> JobSpec | None:
        """The spec the folder was run with, or None when there is none (a corrupt one raises)."""
        from glue_bench.spec import JobSpec

        return JobSpec.load(self.spec_path) if self.spec_path.is_file() else None

    def error(self) -> dict | None:
        error = read_json(self.error_path)
        return error if isinstance(error, dict) else None

    def error_summary(self) -> str | None:
        """`Type: message` of the recorded failure, one line; None when there is none."""
        return error_line(self.error()) if self.error_path.is_file() else None

    def history_tail(self, nbytes: int = 4096) -> list[dict]:
        """The records in the last `nbytes` of history.jsonl, newest first (a torn line is skipped)."""
        try:
            with self.history_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        records = []
        for line in reversed(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def evaluations(self) -> list[dict]:
        """Every dev evaluation in history.jsonl, by step (an evaluation repeated after a resume counts once: the
        later record). A torn or foreign line is skipped."""
        by_step: dict[int, dict] = {}
        try:
            lines = self.history_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        for line in lines:
            if '"eval/task_score"' not in line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                by_step[record["step"]] = record
        return [by_step[step] for step in sorted(by_step)]

    def progress(self) -> dict:
        """Latest history record with a step (step, epoch, ...), read from the tail of history.jsonl."""
        return next((r for r in self.history_tail() if "step" in r), {})

    def is_resumable(self) -> bool:
        return any(self.checkpoints_dir.glob("last-*"))

    def last_event(self) -> str | None:
        """The `event` of the last history record, if it has one (`interrupted`: the job stopped on a signal)."""
        records = self.history_tail()
        return records[0].get("event") if records else None

    # -- writing -------------------------------------------------------------------------------------------
    def write_spec(self, spec: JobSpec) -> Path:
        """spec.json, the spec as run: written once per start, and only when it changed."""
        text = spec.to_json()
        try:
            if self.spec_path.read_text() == text:
                return self.spec_path
        except OSError:
            pass
        atomic_write_text(self.spec_path, text)
        return self.spec_path

    def write_metrics(self, record: MetricsRecord) -> dict:
        """metrics.json, written last and atomically: its valid presence is what "done" means."""
        data = record.to_dict()
        atomic_write_json(self.metrics_path, data)
        return data

    def write_error(self, kind: str, message: str, *, traceback_lines: list[str] | None = None,
                    since: float | None = None) -> str:
        """error.json: type, message, log tail and attempt number; the one-line summary is returned.

        With `since`, an error.json the job itself wrote after `since` is kept (it knows better than the
        exit code an executor saw)."""
        previous = self.error()
        if since is not None and previous is not None and previous.get("time", 0) >= since:
            return error_line(previous)
        record = {"type": kind, "message": message, "attempt": (previous or {}).get("attempt", 0) + 1,
                  "log_tail": _log_tail(self.log_path), "time": time.time()}
        if traceback_lines is not None:
            record["traceback"] = traceback_lines
        atomic_write_json(self.error_path, record)
        return error_line(record)

    def write_exception(self, exc: BaseException) -> str:
        return self.write_error(type(exc).__name__, str(exc), traceback_lines=traceback.format_exception(exc)[-5:])

    def record_exit(self, code: int, since: float) -> str:
        """A job process ended with `code` and no result: keep its own error.json, or write one."""
        return self.write_error("ExitCode", f"job process exited with {code}", since=since)

    def prepare_run(self, spec: JobSpec, force: bool = False) -> tuple[bool, Path | None]:
        """Before `glue-bench train` runs `spec` here: refuse a folder of another job; a done job is left
        alone unless `force` moves it aside. Returns (already done, where the old results went)."""
        old = self.read_spec()
        if old is not None and old.job_id != spec.job_id:
            from glue_bench.errors import GlueBenchError

            raise GlueBenchError(f"{self.path} holds another job ({old.job_id}); choose another --output-dir")
        if not self.is_done():
            return False, None
        return (False, self.move_aside()) if force else (True, None)

    def move_aside(self) -> Path:
        """Move a finished folder to `<name>.old-<time>` (a rerun with --force keeps the old results)."""
        aside = self.path.with_name(f"{self.path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            aside = aside.with_name(f"{self.path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            n += 1
        shutil.move(self.path, aside)
        return aside
