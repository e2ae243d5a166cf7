"""Monotonic time, injected: deadlines, token buckets, blocks and log throttles read one clock.

A clock is anything called with no argument that returns monotonic seconds;
:func:`time.monotonic` is the default everywhere.  A test hands a
:class:`ManualClock` to a server (or to a rate limiter) and moves time with
:meth:`ManualClock.advance` instead of sleeping.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Clock", "ManualClock"]


class Clock(Protocol):
    """Monotonic seconds, from an arbitrary origin (:func:`time.monotonic` is one)."""

    def __call__(self) -> float:
        """The time now."""


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it (for tests)."""

    __slots__ = ("now",)

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """The time it was last set to."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``; a monotonic clock never goes back."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock does not go back ({seconds} s)")
        self.now += seconds

    def __repr__(self) -> str:
        return f"ManualClock({self.now!r})"
