"""Tracking: a small logger Protocol with a Weights & Biases and a null implementation.

The disk is the source of truth; wandb mirrors it. A wandb failure (no network, bad key, server error, slow
init) never fails a job or loses a result: every call is guarded, init and finish have bounded waits, and the
first failure prints one warning line and turns the tracker into the null one. wandb is imported lazily.
"""

from __future__ import annotations

import logging
import netrc
import os
import threading
from pathlib import Path
from typing import Any, Protocol

from glue_bench import choices
from glue_bench.choices import WandbMode

log = logging.getLogger(__name__)

MODES = choices.values(WandbMode)
INIT_TIMEOUT_S = 20.0
FINISH_TIMEOUT_S = 20.0
SECRET_WORDS = ("key", "token", "secret", "password")


class Tracker(Protocol):
    run_id: str | None

    def log(self, metrics: dict[str, Any], step: int) -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def finish(self) -> None: ...


class NullTracker:
    """`--wandb disabled`, non-zero ranks, and what a failed wandb turns into."""

    run_id = None

    def log(self, metrics: dict[str, Any], step: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """`auto`: WANDB_MODE if set, else online with credentials, else offline."""
    if mode not in MODES:
        raise ValueError(f"wandb mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled", "dryrun"):
        return "offline" if env == "dryrun" else env
    return "online" if has_credentials() else "offline"


def _bounded(fn, timeout: float):
    """Run fn in a thread; (result, None) or (None, exception / TimeoutError) within `timeout` seconds."""
    box: dict[str, Any] = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True, name="glue-bench-wandb")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None, TimeoutError(f"no answer within {timeout:.0f} s")
    return box.get("result"), box.get("error")


def clean_config(config: dict[str, Any]) -> dict[str, Any]:
    """Drop anything that looks like a secret before it reaches wandb."""
    return {k: v for k, v in config.items() if not any(w in k.lower() for w in SECRET_WORDS)}


_ACTIVE: list[WandbTracker] = []


def finish_all() -> None:
    """Finish every run still open (a job that failed), each within the bounded wait."""
    for tracker in list(_ACTIVE):
        tracker.finish()


class WandbTracker:
    """One wandb run; any failure degrades to the null tracker with one warning line."""

    def __init__(self, run, mode: str, directory: Path):
        self.run = run
        self.run_id = run.id
        self.mode = mode
        self.directory = directory
        self.failed = False
        _ACTIVE.append(self)

    def _guard(self, what: str, fn) -> None:
        if self.failed:
            return
        try:
            fn()
        except Exception as e:  # wandb must never fail a job
            self._fail(what, e)

    def _fail(self, what: str, error: BaseException) -> None:
        self.failed = True
        log.warning("wandb %s failed (%s: %s); the job goes on, results are on disk", what,
                    type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self._guard("log", lambda: self.run.log({k: v for k, v in metrics.items() if v is not None}, step=step))

    def summary(self, values: dict[str, Any]) -> None:
        self._guard("summary", lambda: self.run.summary.update(values))

    def finish(self) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.failed:
            return
        _, error = _bounded(self.run.finish, FINISH_TIMEOUT_S)
        if error is not None:
            self._fail("finish", error)
        elif self.mode == "offline":
            log.info("wandb run saved offline; upload it later with: wandb sync %s/wandb/offline-run-*",
                     self.directory)


def wandb_directory(default: Path) -> Path:
    """Where wandb keeps its runs: the user's WANDB_DIR when set (wandb.init's `dir=` would override it),
    else `default` (the job's results folder)."""
    env = os.environ.get("WANDB_DIR")
    if not env:
        return Path(default)
    log.info("wandb runs go to WANDB_DIR=%s", env)
    return Path(env)


def offline_sync_hint(results: Path) -> str | None:
    """The line that says where a sweep's offline wandb runs are and how to upload them (None: there are none):
    printed by `run` and `sweep` at the end, not only in each job's log."""
    env = os.environ.get("WANDB_DIR")
    root, pattern = (Path(env), "wandb/offline-run-*") if env else (Path(results), "*/wandb/offline-run-*")
    runs = sorted(root.glob(pattern))
    if not runs:
        return None
    return f"wandb: {len(runs)} run(s) saved offline; upload them with: wandb sync {root / pattern}"


def start(mode: str, *, project: str, entity: str | None, group: str | None, job_type: str, name: str,
          tags: list[str], config: dict[str, Any], directory: Path, run_id: str | None = None,
          resume: bool = False) -> Tracker:
    """A tracker for one run; the null tracker when disabled or when wandb cannot start in time."""
    mode = resolve_mode(mode)
    if mode == "disabled":
        return NullTracker()
    directory = wandb_directory(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def init():
        import wandb

        settings = wandb.Settings(init_timeout=INIT_TIMEOUT_S, silent=True, x_disable_stats=True)
        return wandb.init(project=project, entity=entity, group=group, job_type=job_type, name=name, tags=tags,
                          config=clean_config(config), dir=str(directory), mode=mode, id=run_id,
                          resume="allow" if resume else None, settings=settings, reinit="create_new")

    run, error = _bounded(init, INIT_TIMEOUT_S + 5)
    if error is not None or run is None:
        log.warning("wandb could not start in %s mode (%s: %s); the job goes on without it", mode,
                    type(error).__name__, str(error).splitlines()[0][:200] if error and str(error) else "")
        return NullTracker()
    return WandbTracker(run, mode, directory)


def log_report(mode: str, *, project: str, entity: str | None, sweep: str,
               tables: dict[str, tuple[list[str], list[list[str]]]], images: list[Path], report_json: Path,
               directory: Path) -> str | None:
    """One summary run in the sweep's group: the tables (name -> headers, rows: the GLUE table and the
    equal-budget table), the plots and report.json as an artifact.

    Each call logs a new run (replacing nothing). Returns the run id, or None when disabled or failed.
    """
    import time

    tracker = start(mode, project=project, entity=entity, group=sweep, job_type="report",
                    name=f"{sweep}-report-{time.strftime('%Y%m%d-%H%M%S')}", tags=["report"],
                    config={"sweep": sweep}, directory=directory)
    if not isinstance(tracker, WandbTracker):
        return None

    def log_all():
        import wandb

        values: dict[str, Any] = {name: wandb.Table(columns=headers, data=body)
                                  for name, (headers, body) in tables.items()}
        for image in images:
            values[f"plots/{image.stem}"] = wandb.Image(str(image))
        tracker.run.log(values)
        artifact = wandb.Artifact(f"{sweep}-report", type="report")
        artifact.add_file(str(report_json))
        tracker.run.log_artifact(artifact)

    tracker._guard("report", log_all)
    run_id = tracker.run_id if not tracker.failed else None
    tracker.finish()
    return run_id
