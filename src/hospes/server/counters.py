"""Counters across worker processes: each worker's :class:`Stats` in a slot of shared memory.

With ``workers = N`` every worker counts its own requests in its own
:class:`~hospes.server.stats.Stats` (plain in-process counters: the request
path does exactly what it does with one process).  A :class:`CounterPublisher`
copies them, once a second and when the worker stops, into the worker's slot
of a :class:`CounterBoard`: anonymous shared memory (``mmap``) that the
supervisor creates before it forks, so every worker, and workers restarted
later, share it without a file, a path or a permission to get right.  Anyone
holding the board (the supervisor for its log line, any worker for the admin
capsule's overview) reads every slot and adds them up (:meth:`CounterBoard.totals`);
when a worker dies, the supervisor folds its last counters into a slot of
their own (:meth:`CounterBoard.retire`), so totals since start-up survive restarts.
A worker's last refused requests (:mod:`hospes.server.refusals`) travel in its
slot too: :meth:`CounterBoard.refusals` gives the newest of every worker.

Cost: nothing per request; one publication (a JSON dump of a few dozen
counters and one copy into the slot) takes 10 to 20 µs, once a second per
worker, and a total about 50 µs per worker (``bench/counters.py``).  Totals
are at most one publication interval old, unless the reader first asks the
workers to publish and waits for them (:meth:`CounterBoard.wait_for_workers`:
the supervisor on SIGUSR1).

A slot is written by one process at a time (its worker; the supervisor once
the worker is gone) under a sequence number that is odd while a write is in
progress, so a reader retries instead of reading half a publication.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .refusals import KEPT, RecentRefusals, RefusedRequest, newest
from .stats import Stats

__all__ = ["PUBLISH_INTERVAL", "SLOT_SIZE", "CounterBoard", "CounterPublisher", "WorkerCounters"]

SLOT_SIZE = 16384
"""Bytes per slot: a header and the JSON of one :class:`Stats` (about 1 KiB in practice) and
of the worker's last refusals (up to 300 bytes each; the oldest are left out if they do not
fit)."""
PUBLISH_INTERVAL = 1.0
"""Seconds between two publications of a worker's counters."""

_HEADER = struct.Struct("<IIIId")
"""sequence, pid, open connections, JSON length, time of publication."""
_READ_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class WorkerCounters:
    """One slot's last publication."""

    pid: int
    stats: Stats
    connections: int
    """Connections open when it was published."""
    published: float
    """When, in seconds since the epoch."""
    refusals: tuple[RefusedRequest, ...] = ()
    """Its last refused requests, oldest first."""


class CounterBoard:
    """``workers`` slots of shared memory, plus one for the workers that have stopped.

    Create it before forking; every process then sees the same memory.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a counter board needs at least one worker slot")
        self.workers = workers
        self.created = time.time()
        """When the board, so the server, started (seconds since the epoch)."""
        # An anonymous mapping is MAP_SHARED: children made by fork() share it.
        self._memory = mmap.mmap(-1, (workers + 1) * SLOT_SIZE)
        self._encoded: tuple[Sequence[RefusedRequest], list[bytes]] | None = None
        """The last refusals this process wrote, and their JSON: written again unchanged."""

    @property
    def _retired(self) -> int:
        return self.workers

    def publish(
        self,
        slot: int,
        stats: Stats,
        connections: int = 0,
        refusals: Sequence[RefusedRequest] = (),
    ) -> None:
        """Write ``stats`` to ``slot`` (``0 <= slot < workers``); only its worker calls this.

        ``refusals`` (oldest first) are kept as far as they fit, the newest first.
        """
        if not 0 <= slot < self.workers:
            raise IndexError(f"no worker slot {slot} (0 to {self.workers - 1})")
        self._write(slot, stats, connections, refusals)

    def _write(
        self,
        slot: int,
        stats: Stats | None,
        connections: int,
        refusals: Sequence[RefusedRequest] = (),
    ) -> None:
        data = b""
        if stats is not None:
            kept = self._encode(refusals)
            counters = json.dumps(stats.as_dict()).encode()
            while True:
                data = b'{"stats": %b, "refusals": [%b]}' % (counters, b", ".join(kept))
                if _HEADER.size + len(data) <= SLOT_SIZE or not kept:
                    break
                kept = kept[1:]
        if _HEADER.size + len(data) > SLOT_SIZE:
            raise ValueError(f"counters too large for a slot ({len(data)} bytes)")
        base = slot * SLOT_SIZE
        memory = self._memory
        (sequence,) = struct.unpack_from("<I", memory, base)
        writing = ((sequence + 1) | 1) & 0xFFFFFFFF  # odd: being written
        struct.pack_into("<I", memory, base, writing)
        memory[base + _HEADER.size : base + _HEADER.size + len(data)] = data
        struct.pack_into(
            "<IIId", memory, base + 4, os.getpid(), connections, len(data), time.time()
        )
        struct.pack_into("<I", memory, base, (writing + 1) & 0xFFFFFFFF)  # even: complete

    def _encode(self, refusals: Sequence[RefusedRequest]) -> list[bytes]:
        """Each refusal's JSON; those of the last call again when ``refusals`` is the same list."""
        if self._encoded is not None and self._encoded[0] is refusals:
            return self._encoded[1]
        encoded = [json.dumps(record.as_dict()).encode() for record in refusals]
        self._encoded = (refusals, encoded)
        return encoded

    def read(self, slot: int) -> WorkerCounters | None:
        """The last publication of ``slot`` (the retired slot is ``workers``); None if none."""
        if not 0 <= slot <= self.workers:
            raise IndexError(f"no slot {slot}")
        base = slot * SLOT_SIZE
        memory = self._memory
        for _ in range(_READ_ATTEMPTS):
            before, pid, connections, length, published = _HEADER.unpack_from(memory, base)
            if before & 1 or length > SLOT_SIZE - _HEADER.size:
                continue
            data = memory[base + _HEADER.size : base + _HEADER.size + length]
            (after,) = struct.unpack_from("<I", memory, base)
            if after != before:
                continue
            if length == 0:
                return None
            try:
                found = json.loads(data)
                stats = Stats.from_dict(found["stats"])
                refusals = tuple(RefusedRequest.from_dict(item) for item in found["refusals"])
            except (ValueError, TypeError, AttributeError, KeyError):
                continue
            return WorkerCounters(pid, stats, connections, published, refusals)
        return None

    def retire(self, slot: int) -> None:
        """Fold a stopped worker's last counters into the retired slot and empty its own.

        The supervisor calls this when it reaps the worker, before starting its
        replacement: the slot has no other writer then.
        """
        gone = self.read(slot)
        if gone is None:
            return
        retired = self.read(self._retired)
        earlier = [] if retired is None else [retired]
        total = Stats.total(item.stats for item in [gone, *earlier])
        refusals = newest(item.refusals for item in [gone, *earlier])
        self._write(self._retired, total, 0, refusals[::-1])
        self._write(slot, None, 0)

    def wait_for_workers(self, since: float, timeout: float = 0.5) -> bool:
        """Wait until every worker slot in use was published at ``since`` or later.

        For the supervisor, which has just asked its workers to publish (SIGUSR1):
        its counters line is then current, not a second old.  Polls every 10 ms
        for at most ``timeout`` seconds; False if some worker did not answer in
        time.  Never call it on an event loop: it sleeps.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [self.read(slot) for slot in range(self.workers)]
            if all(item is None or item.published >= since for item in found):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def totals(self) -> tuple[Stats, int]:
        """Every worker's counters added up (stopped ones included), and connections open now."""
        stats, connections, _ = self.overview(0)
        return stats, connections

    def overview(self, refusals: int = KEPT) -> tuple[Stats, int, list[RefusedRequest]]:
        """:meth:`totals` and the ``refusals`` newest refused requests, every slot read once."""
        found = [self.read(slot) for slot in range(self.workers + 1)]
        published = [item for item in found if item is not None]
        stats = Stats.total(item.stats for item in published)
        connections = sum(item.connections for item in published)
        return stats, connections, newest((item.refusals for item in published), refusals)

    def close(self) -> None:
        """Unmap the memory (in the process that calls it)."""
        self._memory.close()


class CounterPublisher:
    """Publishes one worker's counters to its slot every :data:`PUBLISH_INTERVAL` seconds."""

    def __init__(
        self,
        board: CounterBoard,
        slot: int,
        stats: Stats,
        connections: Callable[[], int],
        *,
        interval: float = PUBLISH_INTERVAL,
        refusals: RecentRefusals | None = None,
    ) -> None:
        self.board = board
        self.slot = slot
        self.stats = stats
        self.connections = connections
        self.interval = interval
        self.refusals = refusals
        self._timer: asyncio.TimerHandle | None = None
        self._refused: tuple[object, list[RefusedRequest]] = (None, [])
        """The newest refusal at the last publication, and the records then made."""

    def publish(self) -> None:
        """Publish now (the refusals' records are made again only when there are new ones)."""
        refusals: list[RefusedRequest] = []
        latest = None if self.refusals is None else self.refusals.newest()
        if latest is not None and self.refusals is not None:
            if latest is not self._refused[0]:
                self._refused = (latest, self.refusals.records())
            refusals = self._refused[1]
        self.board.publish(self.slot, self.stats, self.connections(), refusals)

    def start(self) -> None:
        """Publish now and then every interval, on the running event loop."""
        self.publish()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.publish()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        """Stop the timer and publish the final counters."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.publish()
