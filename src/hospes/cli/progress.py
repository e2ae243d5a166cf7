"""The progress line of long transfers on stderr (``hospes get`` to a file, ``hospes put``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "human_size"]

_AFTER = 1.0
"""Seconds before the line appears: a quick transfer prints nothing."""
_EVERY = 0.2
"""Seconds between two redraws."""


class Progress:
    """Bytes moved, a percentage when the size is known, and the rate, redrawn on one line.

    Gemini sends no length, so a download shows no percentage; an upload
    knows its size and draws its last line (100 %) whatever the throttle.
    """

    def __init__(
        self,
        verb: str,
        total: int | None = None,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.verb = verb
        self.total = total
        self.enabled = enabled
        self.clock = clock
        self.stream = stream or sys.stderr
        self.start = clock()
        self.last = 0.0
        self.moved = 0
        self.shown = False

    def advance(self, count: int) -> None:
        """``count`` more bytes were moved."""
        self.reached(self.moved + count)

    def reached(self, moved: int) -> None:
        """``moved`` bytes in all were moved."""
        self.moved = moved
        if not self.enabled:
            return
        now = self.clock()
        elapsed = now - self.start
        finished = self.total is not None and moved >= self.total
        if elapsed < _AFTER or (now - self.last < _EVERY and not finished):
            return
        self.last = now
        if self.total is None:
            line = f"{human_size(moved)} {self.verb}"
        else:
            percent = 100 * moved // self.total if self.total else 100
            line = f"{human_size(moved)} of {human_size(self.total)} {self.verb} ({percent}%)"
        rate = moved / elapsed if elapsed > 0 else 0.0
        self.stream.write(f"\r\x1b[K  {line}, {human_size(rate)}/s")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        """Erase the line, so that what is printed next starts on a clean one."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def human_size(count: float) -> str:
    """``512 B``, ``1.5 KiB``, ``3.0 MiB``, ``2.1 GiB`` (binary units, GiB at most)."""
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
