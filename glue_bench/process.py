"""How a job's processes end and meet: the exit codes every stage agrees on, and free ports (no torch here)."""

from __future__ import annotations

import enum
import socket


class ExitCode(enum.IntEnum):
    """Exit codes of `glue-bench` commands and job processes."""

    OK = 0
    FAILED = 1  # a job failed, or a user error (one line on stderr)
    USAGE = 2  # the command line parser refused the arguments
    INTERRUPTED = 75  # a job saved its `last` checkpoint on a stop signal; running it again resumes (EX_TEMPFAIL)
    CTRL_C = 130  # a runner stopped by Ctrl-C / SIGTERM: its jobs checkpointed (128 + SIGINT)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free TCP port, never one this process handed out before (concurrent jobs need distinct ports)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
