"""Stop requests: SIGTERM, SIGINT and SIGUSR1 set a flag that the training loop checks after each step; the
exit code of a job stopped that way, and the free ports its ranks meet on (no torch here).

Installed at the very start of a rank process (before torch loads), so a signal that arrives during start-up
(Slurm's time-limit signal, a preemption, Ctrl-C) is not lost: the job checkpoints after its first step.
"""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
requested = False


def _handler(signum, frame) -> None:
    global requested
    requested = True


def install() -> None:
    for s in SIGNALS:
        signal.signal(s, _handler)


EXIT_INTERRUPTED = 75  # a job saved its `last` checkpoint on a signal; running it again resumes

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free TCP port, never one this process handed out before (concurrent jobs need distinct ports)."""
    import socket

    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
