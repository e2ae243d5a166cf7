"""Token buckets kept in this process, by wall-clock time: the default of ``Store.take_token``.

A store that only one process uses (SQLite, one node) keeps the account
pages' rate-limit buckets here; a store shared by several nodes keeps them in
its database instead (:class:`~hospes.store.postgres.PostgresStore`), so that
a limit holds whichever node a client reaches.  The arithmetic is
:class:`~hospes.policy.ratelimit.RateLimiter`'s, with the time given by the
caller (stores take ``now`` in every method, so tests move it by hand).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict

__all__ = ["MAX_BUCKETS", "LocalBuckets", "refill"]

MAX_BUCKETS = 65536
"""Buckets kept; the least recently used is forgotten first (it starts afresh: full)."""


def refill(tokens: float, elapsed: float, rate: float, burst: float) -> float:
    """A bucket's level ``elapsed`` seconds after it held ``tokens`` (a clock going back: 0 s)."""
    return min(burst, tokens + max(0.0, elapsed) * rate)


class LocalBuckets:
    """Named token buckets per key, in memory, bounded to :data:`MAX_BUCKETS`."""

    __slots__ = ("_buckets", "max_buckets")

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[tuple[str, str], tuple[float, dt.datetime]] = OrderedDict()

    def take(self, bucket: str, key: str, rate: float, burst: float, now: dt.datetime) -> float:
        """Spend a token: 0.0 if granted, else the seconds to wait (a refusal spends nothing)."""
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        entry = self._buckets.pop((bucket, key), None)
        if entry is None:
            tokens = burst
        else:
            level, then = entry
            tokens = refill(level, (now - then).total_seconds(), rate, burst)
            now = max(now, then)
        if tokens >= 1.0:
            self._buckets[bucket, key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[bucket, key] = (tokens, now)
            wait = (1.0 - tokens) / rate
        if len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)
