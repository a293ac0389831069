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
from glue_bench.results import atomic_write_json, atomic_write_text, is_done, read_json
from glue_bench.spec import JobSpec


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


def job_environment(slot: Slot, claim: dict, lease_s: float) -> dict[str, str]:
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot.gpus))
    env["OMP_NUM_THREADS"] = str(slot.threads)
    env["GLUE_BENCH_CLAIM_TOKEN"] = claim["token"]
    env["GLUE_BENCH_LEASE_S"] = str(lease_s)
    env["GLUE_BENCH_LOG_CAPTURED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def job_progress(out: Path) -> dict:
    """Latest step / epoch of a running job from the tail of its history."""
    try:
        with (out / "history.jsonl").open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "step" in record:
            return record
    return {}


class LocalExecutor:
    """Runs the pending jobs of one planned sweep on local slots."""

    def __init__(self, jobs_dir: Path, slots: list[Slot], retries: int = 0, only: list[str] | None = None,
                 force: bool = False, lease_s: float = claims.DEFAULT_LEASE_S, gpus_per_job: int | None = None,
                 procs_per_job: int | None = None, wandb: str | None = None,
                 on_event: Callable[[str, str], None] | None = None):
        self.jobs_dir = Path(jobs_dir)
        self.manifest = load_manifest(self.jobs_dir)
        self.results_dir = Path(self.manifest["results_dir"])
        self.slots = slots
        self.retries = retries
        self.lease_s = lease_s
        self.gpus_per_job = gpus_per_job
        self.procs_per_job = procs_per_job
        self.wandb = wandb
        self.on_event = on_event or (lambda kind, message: None)
        self.entries = {e["id"]: e for e in self.manifest["jobs"]}
        self.order = [e["id"] for e in sorted(self.manifest["jobs"], key=lambda e: -e["size"])]
        if only:
            self.order = select_jobs(self.order, self.entries, only)
        self.force = force
        self.running: dict[str, Running] = {}
        self.attempts: dict[str, int] = {}
        self.outcome = Outcome()
        self.stop = False
        self.started = time.time()
        self.durations: list[float] = []

    # -- bookkeeping -----------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.results_dir / job_id

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
        done = sum(1 for j in self.order if is_done(self.job_dir(j)))
        failed = len(self.outcome.failed)
        running = len(self.running)
        return {"done": done, "running": running, "failed": failed,
                "pending": len(self.order) - done - running - failed}

    # -- the loop --------------------------------------------------------------------------------------
    def prepare_force(self) -> None:
        for job_id in self.order:
            out = self.job_dir(job_id)
            if is_done(out):
                aside = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
                shutil.move(out, aside)
                self.event("moved-aside", job_id, to=aside.name)

    def pending(self) -> list[str]:
        return [j for j in self.order if j not in self.running and j not in self.outcome.failed
                and not is_done(self.job_dir(j))]

    def start(self, job_id: str, slot: Slot) -> bool:
        out = self.job_dir(job_id)
        claim = claims.try_claim(out, self.lease_s)
        if claim is None:
            return False
        try:
            spec = self.spec_for(job_id)
            if spec.world_size > 1 and slot.gpus and spec.num_gpus != len(slot.gpus):
                spec = spec.replace(num_gpus=len(slot.gpus))
            atomic_write_text(out / "spec.json", spec.to_json())
            log = (out / "train.log").open("a")
            proc = subprocess.Popen(job_command(out / "spec.json", out, spec.world_size), stdout=log,
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
        out = self.job_dir(run.job_id)
        del self.running[run.job_id]
        elapsed = time.time() - run.started
        if is_done(out):  # done, even if the process was stopped while exiting
            self.durations.append(elapsed)
            self.outcome.done.append(run.job_id)
            self.event("done", run.job_id, slot=run.slot.name, seconds=round(elapsed, 2))
        elif code == EXIT_INTERRUPTED or self.stop:
            self.event("interrupted", run.job_id, slot=run.slot.name, seconds=round(elapsed, 2))
        else:
            error = record_failure(out, code, since=run.started)
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
        return bool(self.pending())

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
        self.outcome.skipped_done = [j for j in self.order if is_done(self.job_dir(j))]
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


def record_failure(out: Path, code: int, since: float) -> str:
    """The failure's one-line message; writes error.json when the job died without writing one."""
    error = read_json(out / "error.json")
    log = out / "train.log"
    if not isinstance(error, dict) or error.get("time", 0) < since:
        tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else []
        previous = error.get("attempt", 0) if isinstance(error, dict) else 0
        error = {"type": "ExitCode", "message": f"job process exited with {code}", "attempt": previous + 1,
                 "log_tail": tail, "time": time.time()}
        atomic_write_json(out / "error.json", error)
    return f"{error.get('type')}: {error.get('message')}".splitlines()[0][:300]


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
        chosen += [j for j in order if entries[j]["task"] == task]
    return [j for j in order if j in set(chosen)]


def sweep_status(jobs_dir: Path) -> dict:
    """Counts and details of a sweep's jobs, read from the results folder."""
    manifest = load_manifest(jobs_dir)
    results = Path(manifest["results_dir"])
    status: dict = {"done": [], "running": [], "failed": [], "pending": []}
    for entry in manifest["jobs"]:
        out = results / entry["id"]
        if is_done(out):
            status["done"].append({"id": entry["id"]})
        elif (where := claims.claim_summary(out)) is not None:
            status["running"].append({"id": entry["id"], "where": where, **_step(out)})
        elif (out / "error.json").is_file():
            error = read_json(out / "error.json") or {}
            status["failed"].append({"id": entry["id"], "error": f"{error.get('type')}: {error.get('message')}"
                                     .splitlines()[0][:200], "attempt": error.get("attempt")})
        else:
            status["pending"].append({"id": entry["id"]})
    return status


def _step(out: Path) -> dict:
    p = job_progress(out)
    return {"step": p.get("step"), "epoch": p.get("epoch")}
