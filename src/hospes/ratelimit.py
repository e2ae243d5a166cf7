"""Token buckets keyed by anything hashable (an address, a key fingerprint), in memory.

Each key gets ``burst`` tokens that refill at ``rate`` per second; an action
costs one.  :meth:`RateLimiter.take` answers how long to wait (0 when the
action may go ahead), which is what a ``44 <seconds>`` response needs.  Memory
is bounded: at most ``max_keys`` buckets are kept, least recently used first
out (a forgotten key starts with a full bucket, which errs on the side of
serving).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["RateLimiter"]


class RateLimiter:
    """A token bucket per key."""

    __slots__ = ("_buckets", "_clock", "burst", "max_keys", "rate")

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limiter needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0.0 if granted, else seconds to wait.

        A refused action spends nothing.
        """
        now = self._clock()
        buckets = self._buckets
        entry = buckets.pop(key, None)
        if entry is None:
            tokens = self.burst
        else:
            level, then = entry
            tokens = min(self.burst, level + (now - then) * self.rate)
        if tokens >= cost:
            buckets[key] = (tokens - cost, now)
            wait = 0.0
        else:
            buckets[key] = (tokens, now)
            wait = (cost - tokens) / self.rate
        if len(buckets) > self.max_keys:
            buckets.popitem(last=False)
        return wait

    @staticmethod
    def seconds(wait: float) -> int:
        """A wait as the whole number of seconds a 44 meta carries (at least 1)."""
        return max(1, math.ceil(wait))

    def __len__(self) -> int:
        return len(self._buckets)
