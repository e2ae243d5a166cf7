"""Several server processes on one port: a supervisor and its workers.

Python serves one request at a time per process, and Gemini spends most of a
request in the TLS handshake, so a capsule on a machine with N cores serves
about N times as much with N workers.  Each worker listens on the same
address with ``SO_REUSEPORT`` and the kernel spreads new connections over
them.  The supervisor serves nothing: it starts the workers, forwards
SIGTERM, SIGINT, SIGHUP and SIGUSR1 to them, restarts a worker that dies on
its own, and exits 0 once every worker has stopped after a signal.

Workers are numbered from 1; every log line a worker writes starts with
``worker N:``.  The supervisor's ``report`` (the counters of all workers
together, :mod:`hospes.server.counters`) runs on SIGUSR1 and once every
worker has stopped; ``retire`` runs when a worker dies, before its
replacement starts.

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
from typing import Any

__all__ = ["name_worker_logs", "supervise"]

log = logging.getLogger("hospes")

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
_QUICK_DEATH = 2.0
"""A worker that dies this soon after starting failed at start-up, not in service."""
_MAX_QUICK_DEATHS = 5


def name_worker_logs(number: int) -> None:
    """Start the message of every log record this process makes with ``worker N:``.

    Set as the record factory, so it holds for every logger and handler (hospes',
    asyncio's, a library's) without knowing the log format.
    """
    make = logging.getLogRecordFactory()
    prefix = f"worker {number}: "

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.msg = prefix + str(record.msg)
        return record

    logging.setLogRecordFactory(factory)


def supervise(
    workers: int,
    run_worker: Callable[[int], int],
    *,
    report: Callable[[], None] | None = None,
    retire: Callable[[int], None] | None = None,
) -> int:
    """Run ``run_worker(number)`` in ``workers`` child processes until a signal stops them.

    ``number`` goes from 1 to ``workers``; a replacement gets its predecessor's.
    ``run_worker`` returns the worker's exit status.  ``report`` is called on
    SIGUSR1 (after forwarding it) and after the last worker stopped;
    ``retire(number)`` when a worker is gone, before it is replaced.  Returns
    0 after a clean stop, 1 when workers keep dying right after they start (a
    broken configuration that only a worker could see: then they are all
    stopped).  Must be called before any event loop or thread exists: it forks.
    """
    children: dict[int, tuple[int, float]] = {}
    stopping = False
    quick_deaths = 0

    def spawn(number: int) -> None:
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
                name_worker_logs(number)
                status = run_worker(number)
            except BaseException:
                log.exception("stopped by an error")
            finally:
                os._exit(status)
        children[pid] = (number, time.monotonic())

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)
        if signum == signal.SIGUSR1 and report is not None:
            report()

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        for number in range(1, workers + 1):
            spawn(number)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            number, started = children.pop(pid)
            if retire is not None:
                retire(number)
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
            log.error("worker %d exited with status %d; starting a new one", number, code)
            if quick:
                time.sleep(1.0)
            if not stopping:  # a signal may have come during the pause
                spawn(number)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if report is not None:
        report()
    return 1 if quick_deaths >= _MAX_QUICK_DEATHS else 0
