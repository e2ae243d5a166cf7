"""The running server as the admin capsule's overview sees it: counters, connections, refusals.

A :class:`Monitor` is made before the server (the admin capsule is built with
the handler) and told about it once it exists: :meth:`Monitor.watch` with the
server itself (its own counters), then, when :func:`hospes.runner.serve` runs
it, :meth:`Monitor.share` with the counter board of every worker
(:mod:`hospes.server.counters`), whose totals it reads from then on.  Reading
a snapshot publishes this worker's counters first (tens of microseconds), so
they are current; other workers' are at most a second old.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..server.counters import CounterBoard
from ..server.refusals import KEPT, RecentRefusals, RefusedRequest
from ..server.stats import Stats

__all__ = ["Monitor", "Snapshot", "Watched"]


class Watched(Protocol):
    """What a monitor reads of one server process."""

    stats: Stats
    refusals: RecentRefusals

    @property
    def connection_count(self) -> int:
        """Connections open now."""
        ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The server's counters now, added up over its workers."""

    started: float
    """When the server started, in seconds since the epoch."""
    stats: Stats
    connections: int
    """Connections open now."""
    refusals: list[RefusedRequest]
    """The last refused requests (6x, 44), newest first."""
    workers: int = 1


class Monitor:
    """Where the admin overview reads the server from; empty until :meth:`watch`."""

    def __init__(self) -> None:
        self.started = time.time()
        self._server: Watched | None = None
        self._board: CounterBoard | None = None
        self._publish: Callable[[], None] | None = None

    def watch(self, server: Watched) -> None:
        """Read ``server``'s own counters (a single process, until :meth:`share`)."""
        self._server = server

    def share(self, board: CounterBoard, publish: Callable[[], None]) -> None:
        """Read the totals of every worker on ``board``; ``publish`` puts this worker's there."""
        self._board = board
        self._publish = publish
        self.started = board.created

    def snapshot(self, refusals: int = KEPT) -> Snapshot | None:
        """The counters now (None before :meth:`watch`), with the last ``refusals``."""
        board = self._board
        if board is not None:
            if self._publish is not None:
                self._publish()
            stats, connections, recent = board.overview(refusals)
            return Snapshot(self.started, stats, connections, recent, board.workers)
        server = self._server
        if server is None:
            return None
        stats = Stats.total([server.stats])  # a copy: the server's go on counting
        recent = server.refusals.records()[::-1][:refusals]
        return Snapshot(self.started, stats, server.connection_count, recent)
