"""Several server processes on one port: a supervisor and its workers.

Python serves one request at a time per process, and Gemini spends most of a
request in the TLS handshake, so a capsule on a machine with N cores serves
about N times as much with N workers.  Each worker listens on the same
address with ``SO_REUSEPORT`` and the kernel spreads new connections over
them.  The supervisor serves nothing: it starts the workers, forwards
SIGTERM, SIGINT, SIGHUP and SIGUSR1 to them, restarts a worker that dies on
its own, and exits 0 once every worker has stopped after a signal.

Each worker keeps its own identity cache and rate-limit buckets (limits apply
per worker) and its own connection to the identity store (SQLite in WAL mode
is made for several processes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["supervise"]

log = logging.getLogger("hospes")

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
_QUICK_DEATH = 2.0
"""A worker that dies this soon after starting failed at start-up, not in service."""
_MAX_QUICK_DEATHS = 5


def supervise(workers: int, run_worker: Callable[[int], int]) -> int:
    """Run ``run_worker(index)`` in ``workers`` child processes until a signal stops them.

    ``run_worker`` returns the worker's exit status.  Returns 0 after a clean
    stop, 1 when workers keep dying right after they start (a broken
    configuration that only a worker could see: then they are all stopped).
    Must be called before any event loop or thread exists: it forks.
    """
    children: dict[int, tuple[int, float]] = {}
    stopping = False
    quick_deaths = 0

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                # Until the worker's loop takes them over: a stop still stops it, a
                # reload or a counters request cannot kill a worker that is starting.
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                signal.signal(signal.SIGUSR1, signal.SIG_IGN)
                status = run_worker(index)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                os._exit(status)
        children[pid] = (index, time.monotonic())

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        for index in range(workers):
            spawn(index)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            index, started = children.pop(pid)
            if stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            quick = time.monotonic() - started < _QUICK_DEATH
            quick_deaths = quick_deaths + 1 if quick else 0
            if quick_deaths >= _MAX_QUICK_DEATHS:
                log.error("workers keep exiting at start-up (last status %d); stopping", code)
                stopping = True
                forward(signal.SIGTERM, None)
                continue
            log.error("worker %d exited with status %d; starting a new one", index, code)
            if quick:
                time.sleep(1.0)
            if not stopping:  # a signal may have come during the pause
                spawn(index)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 1 if quick_deaths >= _MAX_QUICK_DEATHS else 0
