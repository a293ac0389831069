"""The local executor: runs a planned sweep's jobs on this machine's GPUs (or CPU slots).

Jobs are packed onto free GPUs by GPUs per job (each pinned with CUDA_VISIBLE_DEVICES, its ranks started by
torchrun on a distinct master port) or onto `--slots` CPU slots that split the cores. With `jobs_per_gpu` N,
N slots share each GPU (small jobs cannot fill one); a job that runs out of GPU memory beside others waits for
a GPU with no other job and runs there alone (an `oom` event; not counted against the retries). Largest jobs
start first. Every job is claimed before it starts (see claims.py), so several runners on one results folder run
each job once; done jobs are skipped, interrupted ones resume from their `last` checkpoint, failed ones are
retried up to `retries` times. Ctrl-C (or SIGTERM) stops the running jobs, which checkpoint and exit 75,
and releases their claims. The slots, a job's command and environment and the out-of-memory test: slots.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.plan.manifest import load_job, load_manifest
from glue_bench.process import ExitCode, free_port
from glue_bench.results import claims
from glue_bench.results.job_folder import JobDir
from glue_bench.run.options import RunOptions
from glue_bench.run.slots import (  # noqa: F401  (LOG_FILE_ENVIRONMENT: slurm_task reads it from here)
    LOG_FILE_ENVIRONMENT,
    Running,
    Slot,
    gpu_name,
    job_command,
    job_environment,
    make_slots,
    ran_out_of_memory,
    resolve_gpus_per_job,
    suppress_lookup,
    visible_gpus,
)
from glue_bench.spec import JobSpec


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped_done: list[str] = field(default_factory=list)
    interrupted: bool = False
    pruned: list[str] = field(default_factory=list)
    """The jobs of `done` that ASHA stopped at a rung."""

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return ExitCode.CTRL_C
        return ExitCode.FAILED if self.failed else ExitCode.OK


class LocalExecutor:
    """Runs the pending jobs of one planned sweep on local slots."""

    def __init__(self, jobs_dir: Path, slots: list[Slot], retries: int = 0, only: list[str] | None = None,
                 force: bool = False, lease_s: float = claims.DEFAULT_LEASE_S, gpus_per_job: int | None = None,
                 procs_per_job: int | None = None, wandb: str | None = None, prune: str | None = None,
                 on_event: Callable[[str, str], None] | None = None, estimate: dict[str, float] | None = None):
        self.jobs_dir = Path(jobs_dir)
        self.manifest = load_manifest(self.jobs_dir)
        self.results_dir = self.manifest.results_dir
        self.slots = slots
        self.retries = retries
        self.lease_s = lease_s
        self.gpus_per_job = gpus_per_job
        self.procs_per_job = procs_per_job
        self.wandb = wandb
        self.prune = prune
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
        self.sources_done: set[str] = set()  # init_from sources found done outside this run's order
        self.attempts: dict[str, int] = {}
        self.oom_attempts: dict[str, int] = {}
        self.ports: dict[str, int] = {}
        self.alone: set[str] = set()  # ran out of GPU memory beside other jobs: next time alone on its GPUs
        self.estimate = estimate or {}  # job id -> estimated seconds (glue_bench.cost.eta), for the ETA
        self.outcome = Outcome()
        self.stop = False
        self.started = time.time()
        self.durations: list[float] = []
        self.finished_seconds: dict[str, float] = {}  # job id -> its wall seconds, for the ETA's correction
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
        if self.prune is not None:
            changes["prune"] = self.prune
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

    def source_state(self, job_id: str) -> str:
        """`ready` when the job starts from nothing or from a done job (`init_from`), `wait` while its source is
        still to run here, `failed` when the source failed or is neither done nor part of this run."""
        after = self.entries[job_id].after
        if after is None or after in self.done or after in self.sources_done:
            return "ready"
        if after in self.outcome.failed:
            return "failed"
        if after in self.order:  # run here (or claimed by another runner: found done when its claim is refused)
            return "wait"
        if self.job(after).is_done():  # outside this run: read once, then remembered
            self.sources_done.add(after)
            return "ready"
        return "failed"

    def startable(self) -> list[str]:
        """Pending jobs whose source is done; a job whose source failed (or is not part of this run) fails."""
        out = []
        for job_id in self.pending():
            state = self.source_state(job_id)
            if state == "failed":
                after = self.entries[job_id].after
                why = "failed" if after in self.outcome.failed else "is neither done nor part of this run"
                error = f"init_from: the job it starts from, {after}, {why}"
                self.outcome.failed[job_id] = error
                self.event("failed", job_id, error=error)
            elif state == "ready":
                out.append(job_id)
        return out

    def start(self, job_id: str, slot: Slot, alone: bool = False) -> bool:
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
            port = self.free_port()
            log = job.log_path.open("a")
            log_start = log.tell()
            proc = subprocess.Popen(job_command(spec_path, out, spec.world_size, port), stdout=log,
                                    stderr=subprocess.STDOUT,
                                    env=job_environment(slot, claim, self.lease_s, port, spec.world_size),
                                    start_new_session=True)
        except BaseException:
            claims.release(out, claim["token"])
            raise
        claims.renew(out, claim["token"], job_pid=proc.pid)
        neighbours = [r for r in self.running.values() if slot.gpus and r.slot.gpus == slot.gpus]
        for r in neighbours:
            r.beside = True
        self.running[job_id] = Running(job_id, slot, proc, claim, time.time(), log, alone, log_start,
                                       beside=bool(neighbours))
        self.ports[job_id] = port
        self.attempts[job_id] = self.attempts.get(job_id, 0) + 1
        self.event("start", job_id, slot=slot.name, attempt=self.attempts[job_id], port=port,
                   **({"alone": True} if alone else {}))
        return True

    def free_port(self) -> int:
        """A free port that no running job of this runner holds (a job binds its port only when it starts)."""
        taken = {self.ports[j] for j in self.running if j in self.ports}
        for _ in range(100):
            port = free_port()
            if port not in taken:
                return port
        raise GlueBenchError("no free port for a job's rendezvous")

    def finish(self, run: Running, code: int) -> None:
        run.log.close()
        job = self.job(run.job_id)
        out = job.path
        del self.running[run.job_id]
        elapsed = time.time() - run.started
        if job.is_done():  # done, even if the process was stopped while exiting
            self.done.add(run.job_id)
            self.durations.append(elapsed)
            self.finished_seconds[run.job_id] = elapsed
            self.outcome.done.append(run.job_id)
            pruned = (job.metrics() or {}).get("pruned")
            if isinstance(pruned, dict):
                self.outcome.pruned.append(run.job_id)
            self.event("done", run.job_id, slot=run.slot.name, seconds=round(elapsed, 2),
                       **({"pruned_after_epoch": pruned.get("epoch")} if isinstance(pruned, dict) else {}))
        elif code == ExitCode.INTERRUPTED or self.stop:
            self.event("interrupted", run.job_id, slot=run.slot.name, seconds=round(elapsed, 2))
        elif run.beside and not run.alone and ran_out_of_memory(job.log_path, run.log_start, self.error_since(run)):
            # beside other jobs on its GPU: not the job's fault; it runs again, alone, and keeps its retries.
            # Out of memory with the GPU to itself is the job's own failure, counted like any other.
            self.oom_attempts[run.job_id] = self.oom_attempts.get(run.job_id, 0) + 1
            self.alone.add(run.job_id)
            self.event("oom", run.job_id, slot=run.slot.name, attempt=self.attempts[run.job_id],
                       seconds=round(elapsed, 2), then="waits for a GPU with no other job")
        else:
            error = job.record_exit(code, since=run.started)
            if self.attempts[run.job_id] - self.oom_attempts.get(run.job_id, 0) <= self.retries:
                self.event("retry", run.job_id, slot=run.slot.name, error=error)
            else:
                self.outcome.failed[run.job_id] = error
                self.event("failed", run.job_id, slot=run.slot.name, error=error, seconds=round(elapsed, 2))
        claims.release(out, run.claim["token"])

    def error_since(self, run: Running) -> dict | None:
        """The error.json this attempt wrote; one left by an earlier attempt says nothing about this one."""
        error = self.job(run.job_id).error()
        return error if error is not None and error.get("time", 0) >= run.started else None

    def free_slots(self) -> list[Slot]:
        """Slots without a job, less those on GPUs that a job has to itself."""
        busy = {r.slot.name for r in self.running.values()}
        exclusive = {r.slot.gpus for r in self.running.values() if r.alone}
        return [s for s in self.slots if s.name not in busy and s.gpus not in exclusive]

    def start_alone(self, pending: list[str]) -> set[tuple[int, ...]]:
        """Start jobs that must run alone on GPUs with no other job; returns the GPUs held back for them (no
        new job starts there, so that they drain)."""
        waiting = [j for j in pending if j in self.alone]
        held: set[tuple[int, ...]] = set()
        if not waiting:
            return held
        load: dict[tuple[int, ...], int] = {}
        for s in self.slots:
            load.setdefault(s.gpus, 0)
        for r in self.running.values():
            load[r.slot.gpus] = load.get(r.slot.gpus, 0) + 1
        for job_id in waiting:
            candidates = [g for g in load if g not in held]
            if not candidates:
                break
            gpus = min(candidates, key=lambda g: load[g])  # the emptiest GPUs drain first
            if load[gpus] == 0:
                slot = next(s for s in self.slots if s.gpus == gpus)
                pending.remove(job_id)
                if self.start(job_id, slot, alone=True):
                    load[gpus] = 1
            held.add(gpus)
        return held

    def step(self) -> bool:
        """One scheduling round; False when nothing is left to do."""
        for run in list(self.running.values()):
            code = run.proc.poll()
            if code is not None:
                self.finish(run, code)
        if self.stop:
            return bool(self.running)
        pending = self.startable()
        held = self.start_alone(pending)
        pending = [j for j in pending if j not in self.alone]
        for slot in self.free_slots():
            if slot.gpus in held:
                continue
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
            with suppress_lookup():
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
                with suppress_lookup():
                    os.killpg(run.proc.pid, signal.SIGTERM)
                run.proc.wait()
                self.finish(run, run.proc.returncode)
        if render:
            render(self)
        return self.outcome

    def eta_seconds(self) -> float | None:
        """Seconds left: from the jobs' estimates (glue_bench.cost.eta), corrected by the throughput the running
        jobs report and by the finished jobs' actual durations; without estimates, from the running jobs'
        progress and the mean duration of the jobs finished so far (`progress_eta`)."""
        from glue_bench.cost.eta import latest_training_record, progress_eta, share_done, sweep_eta

        progress = {j: latest_training_record(self.job(j)) for j in self.running}
        if self.estimate:
            eta = sweep_eta(self.estimate, progress, self.pending(), len(self.slots), self.finished_seconds)
            if eta is not None:
                return eta[0]
        now = time.time()
        running = {j: (now - run.started, share_done(progress[j], self.spec_for(j).epochs))
                   for j, run in self.running.items()}
        return progress_eta(running, self.durations, len(self.pending()), len(self.slots))


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


def build_executor(jobs_dir: Path, options: RunOptions,
                   on_event: Callable[[str, str], None] | None = None) -> LocalExecutor:
    """The local executor of a planned sweep with its slots: `--gpus-per-job` wins over the sweep's
    `gpus_per_job`, `auto` is resolved here (see `resolve_gpus_per_job`, said in `executor.note`)."""
    manifest = load_manifest(jobs_dir)
    jobs_per_gpu = options.jobs_per_gpu or manifest.jobs_per_gpu
    gpus = list(options.gpus) if options.gpus is not None else None
    if gpus is not None:  # before anything starts: a job on a GPU that is not there fails seconds later
        visible = visible_gpus()
        absent = [g for g in gpus if g not in visible]
        if absent:
            raise GlueBenchError(f"--gpus {','.join(map(str, gpus))}: GPU {', '.join(map(str, absent))} is not "
                                 f"visible here (visible: {', '.join(map(str, visible)) or 'none'}); leave --gpus "
                                 "out to use what is visible (CPU slots when there is no GPU)")
    per_job, note = resolve_gpus_per_job(
        manifest.gpus_per_job if options.gpus_per_job is None else options.gpus_per_job, gpus)
    procs = options.procs_per_job or manifest.procs_per_job
    executor = LocalExecutor(jobs_dir, make_slots(gpus, per_job, options.slots, procs, jobs_per_gpu),
                             retries=options.retries, only=list(options.only) if options.only else None,
                             force=options.force, lease_s=options.lease_s, gpus_per_job=per_job,
                             procs_per_job=options.procs_per_job, wandb=options.wandb, prune=options.prune,
                             on_event=on_event)
    executor.note = note
    executor.estimate = planned_estimates(executor, per_job, options.slots or 1)
    return executor


def planned_estimates(executor: LocalExecutor, gpus_per_job: int, cpu_slots: int) -> dict:
    """Per-job estimates for the ETA (glue_bench.cost.eta, no torch); empty when they cannot be made."""
    from glue_bench.cost.calibration import Target
    from glue_bench.cost.eta import job_estimates

    target = Target.cpu(cpu_slots) if gpus_per_job == 0 else Target.cuda(gpu_name() or "")
    try:
        return job_estimates([executor.spec_for(j) for j in executor.order], target)
    except (GlueBenchError, OSError, ValueError):
        return {}
