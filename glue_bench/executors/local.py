"""The local executor: runs a planned sweep's jobs on this machine's GPUs (or CPU slots).

Jobs are packed onto free GPUs by GPUs per job (each pinned with CUDA_VISIBLE_DEVICES, its ranks started by
torchrun on a distinct master port) or onto `--slots` CPU slots that split the cores. Largest jobs start
first. Every job is claimed before it starts (see claims.py), so several runners on one results folder run
each job once; done jobs are skipped, interrupted ones resume from their `last` checkpoint, failed ones are
retried up to `retries` times. Ctrl-C (or SIGTERM) stops the running jobs, which checkpoint and exit 75,
and releases their claims.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.executors import claims
from glue_bench.launch import EXIT_INTERRUPTED, free_port, torchrun_command
from glue_bench.plan import load_job, load_manifest
from glue_bench.results import JobDir
from glue_bench.spec import WANDB_MODES, JobSpec


@dataclass
class Slot:
    """Where one job runs: a set of GPUs, or a share of the CPU cores."""

    name: str
    gpus: tuple[int, ...] = ()
    threads: int = 1


@dataclass
class Running:
    job_id: str
    slot: Slot
    proc: subprocess.Popen
    claim: dict
    started: float
    log: object


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped_done: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


def visible_gpus() -> list[int]:
    """GPU indices torch would see, without importing torch (nvidia-smi), honouring CUDA_VISIBLE_DEVICES."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) for x in env.split(",") if x.strip().isdigit()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(x) for x in out.stdout.split() if x.strip().isdigit()]


def resolve_gpus_per_job(gpus_per_job: int | str, gpus: list[int] | None) -> tuple[int, str | None]:
    """An explicit GPUs-per-job stays binding; `auto` is one GPU per job when GPUs are visible, else CPU
    slots. Returns (GPUs per job, a line saying what `auto` chose, or None)."""
    if gpus_per_job != "auto":
        return int(gpus_per_job), None
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        return 1, f"gpus_per_job auto: one GPU per job on {len(gpus)} visible GPU(s)"
    return 0, "gpus_per_job auto: no GPU visible, jobs run on CPU slots (--slots)"


def make_slots(gpus: list[int] | None, gpus_per_job: int, cpu_slots: int | None, procs_per_job: int) -> list[Slot]:
    """GPU slots of `gpus_per_job` GPUs each, or CPU slots that split the cores between them."""
    if gpus_per_job > 0:
        gpus = visible_gpus() if gpus is None else gpus
        if len(gpus) < gpus_per_job:
            raise GlueBenchError(f"jobs need {gpus_per_job} GPU(s) but {len(gpus)} are visible; "
                                 "use --gpus-per-job 0 for CPU jobs")
        return [Slot(name=f"gpu{','.join(map(str, gpus[i:i + gpus_per_job]))}",
                     gpus=tuple(gpus[i:i + gpus_per_job]))
                for i in range(0, len(gpus) - gpus_per_job + 1, gpus_per_job)]
    n = cpu_slots or 1
    threads = max(1, (os.cpu_count() or 1) // (n * procs_per_job))
    return [Slot(name=f"cpu{i}", threads=threads) for i in range(n)]


def job_command(spec_path: Path, out: Path, world: int) -> list[str]:
    if world == 1:
        return [sys.executable, "-m", "glue_bench.train", "--spec", str(spec_path), "--output-dir", str(out)]
    return torchrun_command(spec_path, out, world, free_port())


# The job's output goes to its train.log: no progress bars (tqdm's carriage returns) and no colour codes.
LOG_FILE_ENVIRONMENT = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_COLOR": "1", "TERM": "dumb"}


def job_environment(slot: Slot, claim: dict, lease_s: float) -> dict[str, str]:
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot.gpus))
    env["OMP_NUM_THREADS"] = str(slot.threads)
    env["GLUE_BENCH_CLAIM_TOKEN"] = claim["token"]
    env["GLUE_BENCH_LEASE_S"] = str(lease_s)
    env["GLUE_BENCH_LOG_CAPTURED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(LOG_FILE_ENVIRONMENT)
    return env


class LocalExecutor:
    """Runs the pending jobs of one planned sweep on local slots."""

    def __init__(self, jobs_dir: Path, slots: list[Slot], retries: int = 0, only: list[str] | None = None,
                 force: bool = False, lease_s: float = claims.DEFAULT_LEASE_S, gpus_per_job: int | None = None,
                 procs_per_job: int | None = None, wandb: str | None = None,
                 on_event: Callable[[str, str], None] | None = None):
        self.jobs_dir = Path(jobs_dir)
        self.manifest = load_manifest(self.jobs_dir)
        self.results_dir = self.manifest.results_dir
        self.slots = slots
        self.retries = retries
        self.lease_s = lease_s
        self.gpus_per_job = gpus_per_job
        self.procs_per_job = procs_per_job
        self.wandb = wandb
        self.on_event = on_event or (lambda kind, message: None)
        self.entries = self.manifest.entries
        self.order = self.manifest.by_size
        if only:
            self.order = select_jobs(self.order, self.entries, only)
        # Done jobs, found once with the stat check and kept up to date: a scheduling pass reads no folder
        # of a done job (a job done by another runner is found when its claim is refused).
        self.done: set[str] = set()
        self.force = force
        self.running: dict[str, Running] = {}
        self.attempts: dict[str, int] = {}
        self.outcome = Outcome()
        self.stop = False
        self.started = time.time()
        self.durations: list[float] = []
        self.note: str | None = None
        self.said_waiting = 0

    # -- bookkeeping -----------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.results_dir / job_id

    def job(self, job_id: str) -> JobDir:
        return JobDir(self.results_dir / job_id)

    def spec_for(self, job_id: str) -> JobSpec:
        spec = load_job(self.jobs_dir, job_id)
        changes = {}
        if self.gpus_per_job is not None:
            changes["num_gpus"] = self.gpus_per_job
        if self.procs_per_job is not None:
            changes["num_procs"] = self.procs_per_job
        if self.wandb is not None:
            changes["wandb"] = self.wandb
        return spec.replace(**changes) if changes else spec

    def event(self, kind: str, job_id: str, **extra) -> None:
        record = {"time": time.time(), "event": kind, "job": job_id, **extra}
        with (self.jobs_dir / "events.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        self.on_event(kind, f"{kind} {job_id}" + "".join(f" {k}={v}" for k, v in extra.items()))

    def counts(self) -> dict[str, int]:
        done = len(self.done)
        failed = len(self.outcome.failed)
        running = len(self.running)
        return {"done": done, "running": running, "failed": failed,
                "pending": len(self.order) - done - running - failed}

    # -- the loop --------------------------------------------------------------------------------------
    def prepare_force(self) -> None:
        for job_id in self.order:
            if self.job(job_id).is_done():
                aside = self.job(job_id).move_aside()
                self.event("moved-aside", job_id, to=aside.name)

    def scan_done(self) -> None:
        self.done = {j for j in self.order if self.job(j).is_done()}

    def pending(self) -> list[str]:
        return [j for j in self.order if j not in self.running and j not in self.outcome.failed
                and j not in self.done]

    def start(self, job_id: str, slot: Slot) -> bool:
        job = self.job(job_id)
        out = job.path
        claim = claims.try_claim(out, self.lease_s)
        if claim is None:
            if job.is_done():  # another runner finished it
                self.done.add(job_id)
            return False
        try:
            spec = self.spec_for(job_id)
            if spec.world_size > 1 and slot.gpus and spec.num_gpus != len(slot.gpus):
                spec = spec.replace(num_gpus=len(slot.gpus))
            spec_path = job.write_spec(spec)
            log = job.log_path.open("a")
            proc = subprocess.Popen(job_command(spec_path, out, spec.world_size), stdout=log,
                                    stderr=subprocess.STDOUT, env=job_environment(slot, claim, self.lease_s),
                                    start_new_session=True)
        except BaseException:
            claims.release(out, claim["token"])
            raise
        claims.renew(out, claim["token"], job_pid=proc.pid)
        self.running[job_id] = Running(job_id, slot, proc, claim, time.time(), log)
        self.attempts[job_id] = self.attempts.get(job_id, 0) + 1
        self.event("start", job_id, slot=slot.name, attempt=self.attempts[job_id])
        return True

    def finish(self, run: Running, code: int) -> None:
        run.log.close()
        job = self.job(run.job_id)
        out = job.path
        del self.running[run.job_id]
        elapsed = time.time() - run.started
        if job.is_done():  # done, even if the process was stopped while exiting
            self.done.add(run.job_id)
            self.durations.append(elapsed)
            self.outcome.done.append(run.job_id)
            self.event("done", run.job_id, slot=run.slot.name, seconds=round(elapsed, 2))
        elif code == EXIT_INTERRUPTED or self.stop:
            self.event("interrupted", run.job_id, slot=run.slot.name, seconds=round(elapsed, 2))
        else:
            error = job.record_exit(code, since=run.started)
            if self.attempts[run.job_id] <= self.retries:
                self.event("retry", run.job_id, slot=run.slot.name, error=error)
            else:
                self.outcome.failed[run.job_id] = error
                self.event("failed", run.job_id, slot=run.slot.name, error=error, seconds=round(elapsed, 2))
        claims.release(out, run.claim["token"])

    def free_slots(self) -> list[Slot]:
        busy = {r.slot.name for r in self.running.values()}
        return [s for s in self.slots if s.name not in busy]

    def step(self) -> bool:
        """One scheduling round; False when nothing is left to do."""
        for run in list(self.running.values()):
            code = run.proc.poll()
            if code is not None:
                self.finish(run, code)
        if self.stop:
            return bool(self.running)
        pending = self.pending()
        for slot in self.free_slots():
            while pending:
                if self.start(pending.pop(0), slot):
                    break
        if self.running:
            return True
        # Nothing runs here: the rest are claimed by other runners (wait for them) or nothing is left.
        waiting = self.pending()
        if waiting and len(waiting) != self.said_waiting:
            self.said_waiting = len(waiting)
            holders = sorted({h for j in waiting if (h := claims.claim_summary(self.job_dir(j)))})
            self.on_event("waiting", f"waiting for {len(waiting)} job(s) that another runner holds"
                          + (f" ({', '.join(holders[:3])})" if holders else ""))
        return bool(waiting)

    def request_stop(self) -> None:
        if self.stop:
            return
        self.stop = True
        self.outcome.interrupted = True
        for run in self.running.values():
            with _suppress_lookup():
                os.killpg(run.proc.pid, signal.SIGTERM)

    def run(self, poll_s: float = 0.2, render: Callable[[LocalExecutor], None] | None = None) -> Outcome:
        if self.force:
            self.prepare_force()
        self.scan_done()
        self.outcome.skipped_done = [j for j in self.order if j in self.done]
        previous = {s: signal.signal(s, lambda *_: self.request_stop()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.step():
                if render:
                    render(self)
                time.sleep(poll_s)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            for run in list(self.running.values()):  # only on an unexpected error
                with _suppress_lookup():
                    os.killpg(run.proc.pid, signal.SIGTERM)
                run.proc.wait()
                self.finish(run, run.proc.returncode)
        if render:
            render(self)
        return self.outcome

    def eta_seconds(self) -> float | None:
        if not self.durations:
            return None
        left = len(self.pending()) + len(self.running)
        return left * (sum(self.durations) / len(self.durations)) / max(1, len(self.slots))


class _suppress_lookup:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, ProcessLookupError | PermissionError)


def select_jobs(order: list[str], entries: dict[str, dict], only: list[str]) -> list[str]:
    """Jobs named by `--only`: task names (`cola,rte`) or job ids."""
    from glue_bench.tasks import get_task

    chosen = []
    for item in only:
        if item in entries:
            chosen.append(item)
            continue
        try:
            task = get_task(item).name
        except GlueBenchError:
            raise GlueBenchError(f"--only {item}: neither a task nor a job id of this sweep") from None
        chosen += [j for j in order if entries[j].task == task]
    return [j for j in order if j in set(chosen)]


def build_executor(jobs_dir: Path, *, gpus: list[int] | None = None, gpus_per_job: int | None = None,
                   procs_per_job: int | None = None, slots: int | None = None, retries: int = 0,
                   only: list[str] | None = None, force: bool = False, lease_s: float = claims.DEFAULT_LEASE_S,
                   wandb: str | None = None, on_event: Callable[[str, str], None] | None = None) -> LocalExecutor:
    """The local executor of a planned sweep with its slots: `--gpus-per-job` wins over the sweep's
    `gpus_per_job`, `auto` is resolved here (see `resolve_gpus_per_job`, said in `executor.note`)."""
    if slots is not None and slots < 1:
        raise GlueBenchError(f"--slots {slots}: must be at least 1")
    if retries < 0:
        raise GlueBenchError(f"--retries {retries}: must be 0 or more")
    if procs_per_job is not None and procs_per_job < 1:
        raise GlueBenchError(f"--procs-per-job {procs_per_job}: must be at least 1")
    if gpus_per_job is not None and gpus_per_job < 0:
        raise GlueBenchError(f"--gpus-per-job {gpus_per_job}: must be 0 (CPU) or more")
    if wandb is not None and wandb not in WANDB_MODES:
        raise GlueBenchError(f"--wandb {wandb!r}: choose {', '.join(WANDB_MODES)}")
    manifest = load_manifest(jobs_dir)
    per_job, note = resolve_gpus_per_job(manifest.gpus_per_job if gpus_per_job is None else gpus_per_job, gpus)
    procs = procs_per_job or manifest.procs_per_job
    executor = LocalExecutor(jobs_dir, make_slots(gpus, per_job, slots, procs), retries=retries, only=only,
                             force=force, lease_s=lease_s, gpus_per_job=per_job, procs_per_job=procs_per_job,
                             wandb=wandb, on_event=on_event)
    executor.note = note
    return executor
