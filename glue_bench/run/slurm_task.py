"""One Slurm array task: claim the job on the node, start one launcher per node, checkpoint-and-requeue on
Slurm's signal. Started by the generated batch script; not meant to be run by hand.

    python -m glue_bench.run.slurm_task JOBS_DIR ARRAY_FILE --ranks-per-node N --gpus-per-node G
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
EARLY_SIGNALS: list[int] = []
if __name__ == "__main__":  # before the imports below: Slurm's signal may come while they load
    for _s in REQUEUE_SIGNALS:
        signal.signal(_s, lambda signum, frame: EARLY_SIGNALS.append(signum))

from glue_bench.plan.manifest import load_job, load_manifest  # noqa: E402
from glue_bench.process import ExitCode  # noqa: E402
from glue_bench.results import claims  # noqa: E402
from glue_bench.results.job_folder import read_json  # noqa: E402
from glue_bench.run.local import LOG_FILE_ENVIRONMENT  # noqa: E402
from glue_bench.run.slurm import launcher_command, rendezvous_port  # noqa: E402


def first_node() -> str:
    nodelist = os.environ.get("SLURM_JOB_NODELIST", "localhost")
    proc = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
    names = proc.stdout.split()
    return names[0] if proc.returncode == 0 and names else nodelist


def is_this_host(node: str) -> bool:
    return node.split(".")[0] == socket.gethostname().split(".")[0]


def free_port_on_all_addresses() -> int:
    """A port free on every address of this host (the c10d store listens on all of them)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs_dir", type=Path)
    parser.add_argument("array_file", type=Path)
    parser.add_argument("--ranks-per-node", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=0)
    args = parser.parse_args(argv)
    # SIGUSR1 is our own time-limit signal (--signal=B:USR1@T): checkpoint and requeue. SIGTERM comes from scancel,
    # `scontrol requeue` or preemption: checkpoint and stop, and Slurm requeues the job or ends it as it decided
    # (a cancelled job shows as COMPLETING while it ends, so asking Slurm is not enough to tell the two apart).
    state: dict = {"stop": bool(EARLY_SIGNALS), "requeue": signal.SIGUSR1 in EARLY_SIGNALS, "child": None}
    finished = threading.Event()

    def forward(signum, frame):
        # Slurm's time-limit signal (B:USR1) or SIGTERM (scontrol requeue, preemption, scancel): the ranks write
        # `last` and exit 75. Signal the job's steps (the ranks themselves) rather than srun, which would tear the
        # step down at once.
        if not state["stop"] and state["child"] is not None:
            threading.Thread(target=signal_ranks, daemon=True).start()
        state["stop"] = True
        state["requeue"] = state["requeue"] or signum == signal.SIGUSR1

    def signal_ranks() -> None:
        # repeated until the ranks are gone: a step that was still starting may have missed the first one.
        # Each scancel is bounded and killed when the ranks are gone: scancel retries on its own while Slurm
        # requeues the job, and a retry that outlived this task would stop the requeued one.
        child = state["child"]
        while child.poll() is None and not finished.is_set():
            state["scancel"] = sender = subprocess.Popen(["scancel", "--signal=TERM", os.environ["SLURM_JOB_ID"]],
                                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                sent = sender.wait(timeout=3)
            except subprocess.TimeoutExpired:
                sender.kill()
                sent = sender.wait()
            if sent != 0 and child.poll() is None:
                child.send_signal(signal.SIGTERM)
            finished.wait(3)

    def stop_signalling() -> None:
        finished.set()
        sender = state.get("scancel")
        if sender is not None and sender.poll() is None:
            sender.kill()
            sender.wait()

    for s in REQUEUE_SIGNALS:
        signal.signal(s, forward)

    index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    slurm_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{index}"
    job_id = read_json(args.array_file)["jobs"][index]
    job = load_manifest(args.jobs_dir).job_dir(job_id)
    out = job.path
    if job.is_done():
        print(f"{job_id} is already done")
        return 0
    claim = claims.try_claim(out, owner=slurm_id)
    if claim is None:
        print(f"{job_id} is claimed by another runner: {claims.read_claim(out)}")
        return 0
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", os.environ.get("SLURM_NNODES", "1")))
    spec = load_job(args.jobs_dir, job_id)
    spec = spec.replace(num_gpus=args.gpus_per_node * nodes,
                        num_procs=args.ranks_per_node * nodes if not args.gpus_per_node else spec.num_procs)
    job.write_spec(spec)
    # the c10d store is hosted by the torchrun agent on the first node, where this batch step runs
    master = first_node()
    here = free_port_on_all_addresses() if is_this_host(master) else None
    port = rendezvous_port(int(os.environ["SLURM_JOB_ID"]), here)
    cmd = launcher_command(job.spec_path, out, nodes, args.ranks_per_node, master, port, slurm_id)
    env = {**os.environ, **LOG_FILE_ENVIRONMENT, "GLUE_BENCH_CLAIM_TOKEN": claim["token"],
           "GLUE_BENCH_LEASE_S": str(claim.get("lease_s", claims.DEFAULT_LEASE_S))}
    print(f"{slurm_id}: {job_id} on {socket.gethostname()} (pid {os.getpid()}): {' '.join(cmd)}", flush=True)
    state["child"] = child = subprocess.Popen(cmd, env=env)
    if state["stop"]:  # the signal came before the ranks existed: pass it on now
        threading.Thread(target=signal_ranks, daemon=True).start()
    code = child.wait()
    stop_signalling()
    if job.is_done():
        claims.release(out, claim["token"])
        return 0
    if state["stop"] or code == ExitCode.INTERRUPTED:
        # requeue on our time-limit signal, or when only the ranks were stopped (a signal to the steps alone)
        if state["stop"] and not state["requeue"]:
            print(f"{slurm_id}: checkpointed; stopped by SIGTERM (Slurm requeues the job or ends it)", flush=True)
            return 0
        print(f"{slurm_id}: checkpointed; requeueing", flush=True)
        subprocess.run(["scontrol", "requeue", slurm_id])  # keeps the claim: the requeued task takes it back
        return 0
    job.record_exit(code, since=claim["start"])
    claims.release(out, claim["token"])
    return code or 1


if __name__ == "__main__":
    sys.exit(main())
