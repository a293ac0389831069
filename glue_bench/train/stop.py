"""Stop requests: SIGTERM, SIGINT and SIGUSR1 set a flag that the training loop checks after each step; the
job then exits with `ExitCode.INTERRUPTED` (no torch here).

Installed at the very start of a rank process (before torch loads), so a signal that arrives during start-up
(Slurm's time-limit signal, a preemption, Ctrl-C) is not lost: the job checkpoints after its first step.
"""

from __future__ import annotations

import os
import signal
import time

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
requested = False


def _handler(signum, frame) -> None:
    global requested
    requested = True


def install() -> None:
    for s in SIGNALS:
        signal.signal(s, _handler)


CRASH_ENVIRONMENT = "GLUE_BENCH_CRASH_AT"
"""Names the point where `crash_point` kills the process: a hook that only tests set."""
CRASH_POINTS = ("between-best-and-last", "after-last", "checkpoint-write", "finish", "after-resume")


PAUSE_ENVIRONMENT = "GLUE_BENCH_PAUSE_AFTER_LAST"
"""A job id: that job, when it started fresh, waits after its first `last` checkpoint until a stop signal comes. A
hook that only tests set, so that a signal (Slurm's requeue, a preemption) lands mid-job at a known point."""


def pause_for_a_signal(job_id: str, fresh_start: bool) -> None:
    """The `GLUE_BENCH_PAUSE_AFTER_LAST` hook (a no-op otherwise): wait here until a stop signal is requested."""
    if fresh_start and os.environ.get(PAUSE_ENVIRONMENT) == job_id:
        while not requested:
            time.sleep(0.05)


def crash_point(name: str) -> None:
    """SIGKILL this process here when GLUE_BENCH_CRASH_AT names this point (tests of what a crash at a named
    moment leaves behind; a no-op otherwise)."""
    if os.environ.get(CRASH_ENVIRONMENT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
