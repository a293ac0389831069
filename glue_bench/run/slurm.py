"""The Slurm executor: a sweep's pending jobs go in as one job array submitted with `sbatch --parsable`.

Why sbatch directly and not submitit: the batch script is plain text we generate and test (array throttle,
`--signal`, `--requeue`, one launcher per node), nothing is pickled across environments, and nothing beyond
Slurm's own client tools is needed. Kept under jobs/<sweep>/slurm/: `array-<n>.json` (array index -> job id),
`submit-<n>.sh` (the script), `submissions.json` (Slurm array job ids), `logs/` and `.submit.lock` (submissions
of one sweep take turns, across runners and hosts).

Inside each array task `python -m glue_bench.run.slurm_task` claims the job (when it starts on a node, not
at submission), starts one launcher per node with `srun` (torchrun for several ranks, ranks from Slurm's
environment, the c10d rendezvous on the first node) and, when Slurm signals the time limit
(`--signal=B:USR1@T`) or sends SIGTERM, passes SIGTERM to the ranks (they write `last` and exit 75). On the
time-limit signal it requeues itself; on SIGTERM (scancel, `scontrol requeue`, preemption) Slurm decides whether
the job comes back. A requeued task (also after a node failure) recognises its own claim and resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.plan.manifest import load_manifest
from glue_bench.results.job_folder import JobDir, atomic_write_json, atomic_write_text, read_json
from glue_bench.run.options import RunOptions, SlurmOptions
from glue_bench.train import rank_arguments

SLURM_DIR = "slurm"


def slurm_dir(jobs_dir: Path) -> Path:
    return Path(jobs_dir) / SLURM_DIR


def job_name(sweep: str) -> str:
    return f"glue-bench-{sweep}"


def sbatch_script(jobs_dir: Path, array_file: Path, count: int, sweep: str, opts: SlurmOptions,
                  python: str = sys.executable, after: tuple[str, ...] = ()) -> str:
    """The batch script of one job array (a pure function of its inputs); `after`: arrays it waits for (to end,
    however they end: each task checks its own `init_from` source when it starts)."""
    jobs_dir = Path(jobs_dir).resolve()
    array = f"0-{count - 1}" + (f"%{opts.array_parallelism}" if opts.array_parallelism else "")
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name(sweep)}", f"#SBATCH --array={array}",
             f"#SBATCH --nodes={opts.nodes}", "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --output={jobs_dir / SLURM_DIR / 'logs' / '%A_%a.out'}", "#SBATCH --open-mode=append",
             "#SBATCH --requeue", f"#SBATCH --signal=B:USR1@{opts.signal_seconds}"]
    if opts.gpus_per_job:
        lines.append(f"#SBATCH --gpus-per-node={opts.gpus_per_job}")
    for flag, value in (("partition", opts.partition), ("account", opts.account), ("qos", opts.qos),
                        ("time", opts.time), ("cpus-per-task", opts.cpus_per_task), ("mem", opts.mem),
                        ("constraint", opts.constraint)):
        if value is not None:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [f"#SBATCH {arg}" for arg in opts.sbatch_args]
    if after:
        lines.append(f"#SBATCH --dependency=afterany:{':'.join(after)}")
    task = [python, "-m", "glue_bench.run.slurm_task", str(jobs_dir), str(array_file.resolve()),
            "--ranks-per-node", str(opts.ranks_per_node), "--gpus-per-node", str(opts.gpus_per_job)]
    if opts.prune is not None:
        task += ["--prune", opts.prune]
    # exec: the task process itself receives Slurm's batch signal (B:USR1) and SIGTERM
    lines += ["", "exec " + shlex.join(task), ""]
    return "\n".join(lines)


def launcher_command(spec_path: Path, out: Path, nodes: int, ranks_per_node: int, master_addr: str,
                     master_port: int, rdzv_id: str, python: str = sys.executable) -> list[str]:
    """`srun` starting one launcher per node: the train entry point itself for one rank, torchrun otherwise."""
    srun = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    train = rank_arguments(spec_path, out)
    if nodes == 1 and ranks_per_node == 1:
        return [*srun, python, *train]
    torchrun = [python, "-m", "torch.distributed.run", f"--nnodes={nodes}", f"--nproc-per-node={ranks_per_node}",
                "--rdzv-backend=c10d", f"--rdzv-endpoint={master_addr}:{master_port}", f"--rdzv-id={rdzv_id}"]
    return [*srun, *torchrun, *train]


def rendezvous_port(slurm_job_id: int, free_port_here: int | None) -> int:
    """The c10d port of one task: a port the OS found free on the first node when the task runs there (the
    batch step does), else one derived from the task's own Slurm job id (unique per array task, unlike the
    array id: two multi-node tasks whose first node is the same host must not share a port)."""
    if free_port_here is not None:
        return free_port_here
    return 20000 + slurm_job_id % 20000


# -- talking to Slurm ------------------------------------------------------------------------------------


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise GlueBenchError(f"Slurm is not reachable: no {cmd[0]} on PATH (is this a Slurm login node?)")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GlueBenchError(f"Slurm is not reachable: {cmd[0]} did not answer in {timeout:.0f} s") from None


def check_reachable() -> None:
    proc = _run(["sinfo", "-h", "-o", "%P"], timeout=20)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise GlueBenchError(f"Slurm is not reachable: sinfo failed ({detail})")


def queued(sweep: str) -> dict[str, dict]:
    """Array tasks of this sweep that Slurm still knows: `<array id>_<index>` -> state and reason."""
    proc = _run(["squeue", "-h", "-r", "--name", job_name(sweep), "-o", "%i|%T|%r|%N"])
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise GlueBenchError(f"Slurm is not reachable: squeue failed ({detail})")
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            out[parts[0]] = {"state": parts[1], "reason": parts[2], "nodes": parts[3]}
    return out


def submissions(jobs_dir: Path) -> list[dict]:
    return read_json(slurm_dir(jobs_dir) / "submissions.json") or []


def task_map(jobs_dir: Path) -> dict[str, str]:
    """`<array id>_<index>` -> job id, over every submission of this sweep."""
    out = {}
    for sub in submissions(jobs_dir):
        for index, job_id in enumerate(sub["jobs"]):
            out[f"{sub['array_job_id']}_{index}"] = job_id
    return out


def queued_jobs(jobs_dir: Path, sweep: str) -> dict[str, dict]:
    """Job id -> Slurm state, for this sweep's jobs that are pending or running in Slurm."""
    tasks = task_map(jobs_dir)
    out = {}
    for task_id, state in queued(sweep).items():
        if task_id in tasks:
            out[tasks[task_id]] = {"slurm_id": task_id, **state}
        elif "[" in task_id:  # a pending array range squeue did not expand
            base = task_id.split("_")[0]
            out.update({j: {"slurm_id": t, **state} for t, j in tasks.items() if t.startswith(base + "_")})
    return out


@dataclass
class Submission:
    array_job_id: str | None
    jobs: list[str]
    skipped_done: list[str] = field(default_factory=list)
    skipped_queued: list[str] = field(default_factory=list)
    script: Path | None = None
    dependent_array_job_id: str | None = None
    """The second array, of jobs that start from a job of the first (`init_from`), held until the first ends."""
    dependent_jobs: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _submit_lock(folder: Path):
    """One submission of a sweep at a time, across runners and hosts sharing the jobs folder: between reading
    what is queued and recording the new array, another runner would see neither, reuse `array-<n>.json` and
    `submit-<n>.sh` and lose one of the two entries of `submissions.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".submit.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def submit(jobs_dir: Path, opts: SlurmOptions, only: list[str] | None = None, dry_run: bool = False) -> Submission:
    """Submit the sweep's jobs that are neither done nor already queued in Slurm, as one job array."""
    jobs_dir = Path(jobs_dir)
    if dry_run:
        return _submit(jobs_dir, opts, only, dry_run=True)
    check_reachable()
    with _submit_lock(slurm_dir(jobs_dir)):
        return _submit(jobs_dir, opts, only, dry_run=False)


def _submit(jobs_dir: Path, opts: SlurmOptions, only: list[str] | None, dry_run: bool) -> Submission:
    manifest = load_manifest(jobs_dir)
    order = manifest.by_size
    if only is not None:
        order = [j for j in order if j in set(only)]
    done = [j for j in order if manifest.job_dir(j).is_done()]
    in_slurm = queued_jobs(jobs_dir, manifest.name) if not dry_run else {}
    pending = [j for j in order if j not in done and j not in in_slurm]
    sub = Submission(None, pending, done, [j for j in order if j in in_slurm])
    if not pending:
        return sub
    # jobs that start from a job still to run (init_from) go in a second array, held until the arrays of their
    # sources end: the first of this submission, and any already in Slurm
    entries = manifest.entries
    waits = {j: entries[j].after for j in pending
             if entries[j].after and not manifest.job_dir(entries[j].after).is_done()}
    first = [j for j in pending if j not in waits]
    queued_sources = sorted({in_slurm[s]["slurm_id"].split("_")[0] for s in waits.values() if s in in_slurm})
    if dry_run:
        sub.script = slurm_dir(jobs_dir) / f"submit-{len(submissions(jobs_dir))}.sh"
        return sub
    (slurm_dir(jobs_dir) / "logs").mkdir(parents=True, exist_ok=True)
    after = list(queued_sources)
    if first:
        sub.array_job_id, sub.script = _submit_array(jobs_dir, manifest.name, first, opts, ())
        after.append(sub.array_job_id)
    if waits:
        dependent_id, script = _submit_array(jobs_dir, manifest.name, list(waits), opts, tuple(after))
        sub.dependent_array_job_id, sub.dependent_jobs = dependent_id, list(waits)
        if sub.array_job_id is None:
            sub.array_job_id, sub.script = dependent_id, script
    return sub


def _submit_array(jobs_dir: Path, sweep: str, jobs: list[str], opts: SlurmOptions,
                  after: tuple[str, ...]) -> tuple[str, Path]:
    """sbatch one array of `jobs` (held until the arrays `after` end) and record it; its id and script."""
    folder = slurm_dir(jobs_dir)
    n = len(submissions(jobs_dir))
    array_file = folder / f"array-{n}.json"
    script = folder / f"submit-{n}.sh"
    atomic_write_json(array_file, {"jobs": jobs, "options": {k: getattr(opts, k) for k in opts.__slots__}})
    atomic_write_text(script, sbatch_script(jobs_dir, array_file, len(jobs), sweep, opts, after=after))
    proc = _run(["sbatch", "--parsable", str(script)], timeout=60)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise GlueBenchError(f"sbatch refused the array: {detail}")
    array_id = proc.stdout.strip().split(";")[0]
    atomic_write_json(folder / "submissions.json", [*submissions(jobs_dir), {
        "array_job_id": array_id, "array_file": array_file.name, "jobs": jobs, "time": time.time(),
        **({"after": list(after)} if after else {})}])
    return array_id, script


def cancel(jobs_dir: Path) -> list[str]:
    """scancel every array this sweep submitted that Slurm still knows; the array ids cancelled."""
    manifest = load_manifest(jobs_dir)
    live = {t.split("_")[0] for t in queued(manifest.name)}
    ids = [s["array_job_id"] for s in submissions(jobs_dir) if s["array_job_id"] in live]
    if ids:
        proc = _run(["scancel", *ids])
        if proc.returncode != 0:
            raise GlueBenchError(f"scancel failed: {(proc.stderr.strip().splitlines() or [''])[-1]}")
    return ids


def slurm_failure(task_id: str) -> str | None:
    """Why Slurm ended a task (timeout, OOM, node failure), while scontrol still knows it."""
    proc = _run(["scontrol", "show", "job", task_id, "-o"])
    if proc.returncode != 0:
        return None
    fields = dict(kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv)
    state = fields.get("JobState")
    if state in ("COMPLETED", "RUNNING", "PENDING", None):
        return None
    return f"Slurm {state} ({fields.get('Reason', 'None')}), exit {fields.get('ExitCode')}"


def wait(jobs_dir: Path, sub: Submission, opts: SlurmOptions, retries: int = 0, poll_s: float = 2.0,
         on_event=print) -> dict[str, str]:
    """Wait until this sweep has nothing left in Slurm; resubmit failed jobs up to `retries` times.

    Returns the failed jobs (job id -> reason)."""
    manifest = load_manifest(jobs_dir)
    watched = set(sub.jobs) | set(sub.skipped_queued)
    reported: set[str] = set()
    attempts = dict.fromkeys(watched, 1)
    while True:
        in_slurm = queued_jobs(jobs_dir, manifest.name)
        for job in sorted(watched - set(in_slurm) - reported):
            if manifest.job_dir(job).is_done():
                on_event(f"done {job}")
                reported.add(job)
        if not in_slurm:
            failed = {j: failure_reason(manifest.job_dir(j), jobs_dir, j) for j in watched - reported
                      if not manifest.job_dir(j).is_done()}
            retry = [j for j in failed if attempts[j] <= retries]
            if not retry:
                return failed
            for j in retry:
                attempts[j] += 1
                on_event(f"retry {j}: {failed[j]}")
            submit(jobs_dir, opts, only=retry)
        time.sleep(poll_s)


def failure_reason(job: JobDir, jobs_dir: Path, job_id: str) -> str:
    summary = job.error_summary()
    if summary is not None:
        return summary
    slurm_ids = [t for t, j in task_map(jobs_dir).items() if j == job_id]
    if not slurm_ids:
        return "ended without results"
    reason = slurm_failure(slurm_ids[-1]) or "ended without results"
    return f"{reason}; log {slurm_dir(jobs_dir) / 'logs' / (slurm_ids[-1] + '.out')}"


def options_for(jobs_dir: Path, options: RunOptions | None = None) -> SlurmOptions:
    """sbatch options of a planned sweep: `--gpus-per-job` wins over the sweep's, `auto` is one GPU per job."""
    options = options or RunOptions(executor="slurm")
    manifest = load_manifest(jobs_dir)
    per_job = manifest.gpus_per_job if options.gpus_per_job is None else options.gpus_per_job
    return dataclasses.replace(options.slurm, gpus_per_job=1 if per_job == "auto" else int(per_job),
                               procs_per_job=options.procs_per_job or manifest.procs_per_job, prune=options.prune)
