"""Claims: which runner owns a job, so that runners sharing a results folder run each job exactly once.

Semantics
- A job's claim is the file `results/<sweep>/<job-id>/claim` (JSON: token, host, runner pid, job pid,
  start, lease expiry). Creating, renewing, taking over and releasing it all happen under an exclusive
  `flock` on `.claim.lock` beside it, so two claimers never both win, on one machine or on a shared file
  system with working POSIX locks.
- A claim is alive while its lease has not expired. The job process itself renews the lease (every third of
  the lease), so an orphaned job whose runner died keeps its claim while it lives.
- A claim is dead when its lease expired, or, on the same host, when neither its runner nor its job process
  exists any more (a crash is recognised at once instead of after the lease). A dead claim may be taken.
- A done job is never claimed (callers check `is_done` first, and `try_claim` checks again under the lock).
- Release removes the claim only if the token still matches.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from glue_bench.results.job_folder import JobDir, atomic_write_json, is_done, read_json

LOCK = ".claim.lock"
DEFAULT_LEASE_S = 120.0


@contextlib.contextmanager
def _locked(job_dir: Path):
    job_dir.mkdir(parents=True, exist_ok=True)
    with open(job_dir / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_claim(job_dir: Path) -> dict | None:
    claim = read_json(JobDir(job_dir).claim_path)
    return claim if isinstance(claim, dict) else None


def claim_alive(claim: dict | None, now: float | None = None) -> bool:
    if not claim:
        return False
    if (now or time.time()) > claim.get("expires", 0):
        return False
    if claim.get("host") == socket.gethostname():
        return _pid_alive(claim.get("runner_pid")) or _pid_alive(claim.get("job_pid"))
    return True


def try_claim(job_dir: Path, lease_s: float = DEFAULT_LEASE_S, runner_pid: int | None = None,
              owner: str | None = None) -> dict | None:
    """Claim a job that is not done and not claimed by a live holder; the new claim, or None.

    `owner` names the claimant across restarts (a Slurm array task id): a live claim with the same owner is
    our own (a requeued Slurm task) and is taken back."""
    job_dir = Path(job_dir)
    with _locked(job_dir):
        existing = read_claim(job_dir)
        mine = owner is not None and existing is not None and existing.get("owner") == owner
        if is_done(job_dir) or (claim_alive(existing) and not mine):
            return None
        now = time.time()
        claim = {"token": uuid.uuid4().hex, "host": socket.gethostname(), "runner_pid": runner_pid or os.getpid(),
                 "job_pid": None, "start": now, "expires": now + lease_s, "lease_s": lease_s, "owner": owner}
        atomic_write_json(JobDir(job_dir).claim_path, claim)
        return claim


def renew(job_dir: Path, token: str, lease_s: float | None = None, job_pid: int | None = None) -> bool:
    """Extend the lease of our claim; False if the claim is no longer ours."""
    job_dir = Path(job_dir)
    with _locked(job_dir):
        claim = read_claim(job_dir)
        if not claim or claim.get("token") != token:
            return False
        claim["expires"] = time.time() + (lease_s or claim.get("lease_s", DEFAULT_LEASE_S))
        if job_pid is not None:
            claim["job_pid"] = job_pid
        atomic_write_json(JobDir(job_dir).claim_path, claim)
        return True


def release(job_dir: Path, token: str) -> None:
    job_dir = Path(job_dir)
    with _locked(job_dir):
        claim = read_claim(job_dir)
        if claim and claim.get("token") == token:
            JobDir(job_dir).claim_path.unlink(missing_ok=True)


class LeaseKeeper:
    """Renews a claim from inside the job process (started by train when GLUE_BENCH_CLAIM_TOKEN is set)."""

    def __init__(self, job_dir: Path, token: str, lease_s: float):
        self.job_dir, self.token, self.lease_s = Path(job_dir), token, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="glue-bench-lease")

    def start(self) -> LeaseKeeper:
        renew(self.job_dir, self.token, self.lease_s, job_pid=os.getpid())
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            if not renew(self.job_dir, self.token, self.lease_s):
                return

    def stop(self) -> None:
        self._stop.set()

    @classmethod
    def from_environment(cls, job_dir: Path) -> LeaseKeeper | None:
        token = os.environ.get("GLUE_BENCH_CLAIM_TOKEN")
        if not token:
            return None
        return cls(job_dir, token, float(os.environ.get("GLUE_BENCH_LEASE_S", DEFAULT_LEASE_S))).start()


def claim_summary(job_dir: Path) -> str | None:
    """`host pid N` of a live claim, for status displays."""
    claim = read_claim(job_dir)
    if not claim_alive(claim):
        return None
    return f"{claim['host']} pid {claim.get('job_pid') or claim.get('runner_pid')}"
