"""The access log: one line per request, written in batches off the request path.

Format (space-separated, one request per line)::

    2026-11-27T17:29:42.123Z 203.0.113.7:51234 SHA256:3f2a9b1c4d5e "gemini://ex.org/" 20 1432 1.8ms

time (UTC), remote address:port, the client certificate's short fingerprint
or ``-``, the requested URL (quoted, escaped), status, body bytes, duration.
Lines are buffered and flushed every ``interval`` seconds and at shutdown, so
a busy server makes one write per batch rather than one per request.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from ..gemini.escape import printable
from ..gemini.fingerprint import short_fingerprint

__all__ = ["AccessLog"]

log = logging.getLogger("hospes.server")

ATOMIC_WRITE = 4096
"""PIPE_BUF on Linux: the largest write to a pipe that is never split."""


class AccessLog:
    """Formats and buffers access lines for a text stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self._lines: list[str] = []
        self._flusher: asyncio.TimerHandle | None = None
        self._second = -1
        self._last_error = -60.0
        self._stamp = ""

    def record(
        self,
        *,
        remote: str,
        fingerprint: str | None,
        target: str,
        status: int | str,
        size: int,
        seconds: float,
    ) -> None:
        """Queue one access line."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        who = "-" if fingerprint is None else short_fingerprint(fingerprint)
        quoted = printable(target, 1024).replace('"', '\\"')
        self._lines.append(
            f'{self._stamp}.{int(now % 1 * 1000):03d}Z {remote} {who} "{quoted}" '
            f"{status} {size} {seconds * 1000:.1f}ms\n"
        )
        if self._flusher is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flusher = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Write every queued line now."""
        self._flusher = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            for chunk in _chunks(lines):
                self.stream.write(chunk)
                self.stream.flush()
        except (OSError, ValueError) as exc:
            # A full disk must not stop the server: say so (once a minute), drop the lines.
            now = time.monotonic()
            if now - self._last_error >= 60:
                self._last_error = now
                log.error("cannot write the access log (%s); %d lines dropped", exc, len(lines))


def _chunks(lines: list[str], limit: int = ATOMIC_WRITE) -> Iterator[str]:
    """Whole lines joined into writes of at most ``limit`` bytes (one line may exceed it).

    Writes up to PIPE_BUF are atomic on a pipe: several workers sharing one
    stdout never interleave parts of their lines.
    """
    chunk: list[str] = []
    size = 0
    for line in lines:
        length = len(line.encode("utf-8"))
        if chunk and size + length > limit:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:
        yield "".join(chunk)
