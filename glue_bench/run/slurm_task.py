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
from glue_bench.results.job_folder import JobDir, read_json  # noqa: E402
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


class RankSignaller:
    """Passes Slurm's signals on to the job's ranks.

    SIGUSR1 is our own time-limit signal (--signal=B:USR1@T): checkpoint and requeue. SIGTERM comes from scancel,
    `scontrol requeue` or preemption: checkpoint and stop, and Slurm requeues the job or ends it as it decided
    (a cancelled job shows as COMPLETING while it ends, so asking Slurm is not enough to tell the two apart)."""

    def __init__(self) -> None:
        self.stop = bool(EARLY_SIGNALS)
        self.requeue = signal.SIGUSR1 in EARLY_SIGNALS
        self.child: subprocess.Popen | None = None
        self.sender: subprocess.Popen | None = None
        self.finished = threading.Event()
        for s in REQUEUE_SIGNALS:
            signal.signal(s, self.forward)

    def forward(self, signum, frame) -> None:
        # Slurm's time-limit signal (B:USR1) or SIGTERM (scontrol requeue, preemption, scancel): the ranks write
        # `last` and exit 75. Signal the job's steps (the ranks themselves) rather than srun, which would tear the
        # step down at once.
        if not self.stop and self.child is not None:
            threading.Thread(target=self.signal_ranks, daemon=True).start()
        self.stop = True
        self.requeue = self.requeue or signum == signal.SIGUSR1

    def started(self, child: subprocess.Popen) -> None:
        self.child = child
        if self.stop:  # the signal came before the ranks existed: pass it on now
            threading.Thread(target=self.signal_ranks, daemon=True).start()

    def signal_ranks(self) -> None:
        # repeated until the ranks are gone: a step that was still starting may have missed the first one.
        # Each scancel is bounded and killed when the ranks are gone: scancel retries on its own while Slurm
        # requeues the job, and a retry that outlived this task would stop the requeued one.
        child = self.child
        while child.poll() is None and not self.finished.is_set():
            self.sender = sender = subprocess.Popen(["scancel", "--signal=TERM", os.environ["SLURM_JOB_ID"]],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                sent = sender.wait(timeout=3)
            except subprocess.TimeoutExpired:
                sender.kill()
                sent = sender.wait()
            if sent != 0 and child.poll() is None:
                child.send_signal(signal.SIGTERM)
            self.finished.wait(3)

    def done(self) -> None:
        self.finished.set()
        sender = self.sender
        if sender is not None and sender.poll() is None:
            sender.kill()
            sender.wait()


def rank_launcher(args: argparse.Namespace, job: JobDir, job_id: str, claim: dict,
                  slurm_id: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start the job's ranks on every node of the allocation."""
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", os.environ.get("SLURM_NNODES", "1")))
    spec = load_job(args.jobs_dir, job_id)
    spec = spec.replace(num_gpus=args.gpus_per_node * nodes,
                        num_procs=args.ranks_per_node * nodes if not args.gpus_per_node else spec.num_procs,
                        **({"prune": args.prune} if args.prune is not None else {}))
    job.write_spec(spec)
    # the c10d store is hosted by the torchrun agent on the first node, where this batch step runs
    master = first_node()
    here = free_port_on_all_addresses() if is_this_host(master) else None
    port = rendezvous_port(int(os.environ["SLURM_JOB_ID"]), here)
    cmd = launcher_command(job.spec_path, job.path, nodes, args.ranks_per_node, master, port, slurm_id)
    env = {**os.environ, **LOG_FILE_ENVIRONMENT, "GLUE_BENCH_CLAIM_TOKEN": claim["token"],
           "GLUE_BENCH_LEASE_S": str(claim.get("lease_s", claims.DEFAULT_LEASE_S))}
    return cmd, env


def settle(job: JobDir, claim: dict, code: int, signaller: RankSignaller, slurm_id: str) -> int:
    """After the ranks ended: release a done job, requeue a checkpointed one, record a failure."""
    if job.is_done():
        claims.release(job.path, claim["token"])
        return ExitCode.OK
    if signaller.stop or code == ExitCode.INTERRUPTED:
        # requeue on our time-limit signal, or when only the ranks were stopped (a signal to the steps alone)
        if signaller.stop and not signaller.requeue:
            print(f"{slurm_id}: checkpointed; stopped by SIGTERM (Slurm requeues the job or ends it)", flush=True)
            return ExitCode.OK
        print(f"{slurm_id}: checkpointed; requeueing", flush=True)
        subprocess.run(["scontrol", "requeue", slurm_id])  # keeps the claim: the requeued task takes it back
        return ExitCode.OK
    job.record_exit(code, since=claim["start"])
    claims.release(job.path, claim["token"])
    return code or ExitCode.FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs_dir", type=Path)
    parser.add_argument("array_file", type=Path)
    parser.add_argument("--ranks-per-node", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=0)
    parser.add_argument("--prune", default=None, help="ASHA over the sweep's prune key (asha or none)")
    args = parser.parse_args(argv)
    signaller = RankSignaller()
    index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    slurm_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{index}"
    job_id = read_json(args.array_file)["jobs"][index]
    job = load_manifest(args.jobs_dir).job_dir(job_id)
    if job.is_done():
        print(f"{job_id} is already done")
        return ExitCode.OK
    claim = claims.try_claim(job.path, owner=slurm_id)
    if claim is None:
        print(f"{job_id} is claimed by another runner: {claims.read_claim(job.path)}")
        return ExitCode.OK
    cmd, env = rank_launcher(args, job, job_id, claim, slurm_id)
    print(f"{slurm_id}: {job_id} on {socket.gethostname()} (pid {os.getpid()}): {' '.join(cmd)}", flush=True)
    child = subprocess.Popen(cmd, env=env)
    signaller.started(child)
    code = child.wait()
    signaller.done()
    return settle(job, claim, code, signaller, slurm_id)


if __name__ == "__main__":
    sys.exit(main())
