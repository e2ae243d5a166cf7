"""Rate limits: token buckets, per-path rules, and escalating blocks for clients that ignore 44.

:class:`RateLimiter` keeps a token bucket per key: ``burst`` tokens that
refill at ``rate`` per second, one spent per action; :meth:`RateLimiter.take`
answers how long to wait (0 when the action may go ahead), which is what a
``44 <seconds>`` response needs.

:class:`RateLimits` applies :class:`RateRule` s by path prefix (the longest
matching prefix wins) to two keys of a request: the remote address group and
the client key (the certificate's public-key fingerprint).  :class:`Blocks`
remembers clients that keep coming back before the wait they were told and
blocks their address group for doubling periods; the server refuses blocked
addresses at accept, before any TLS work.

Memory is bounded everywhere: every table keeps at most ``max_keys`` entries,
least recently used first out (a forgotten key starts afresh, which errs on
the side of serving).  Time comes from the :class:`~hospes.policy.clock.Clock`
each is given (:func:`time.monotonic` by default), so tests move it by hand.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from .clock import Clock

__all__ = ["Blocks", "RateLimiter", "RateLimits", "RateRule"]

MAX_KEYS = 65536


class RateLimiter:
    """A token bucket per key."""

    __slots__ = ("_buckets", "_clock", "burst", "max_keys", "rate")

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = MAX_KEYS,
        clock: Clock = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limiter needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, key: Hashable) -> float:
        """Spend a token of ``key``'s bucket: 0.0 if granted, else the seconds to wait.

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
        if tokens >= 1.0:
            buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(buckets) > self.max_keys:
            buckets.popitem(last=False)
        return wait

    @staticmethod
    def seconds(wait: float) -> int:
        """A wait as the whole number of seconds a 44 meta carries (at least 1)."""
        return max(1, math.ceil(wait))

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class RateRule:
    """Rate limits for the paths under ``path``: ``per_address`` and ``per_key`` per second.

    None disables that limit.  ``burst`` is how many requests may come at once
    before the rate applies.
    """

    path: str = "/"
    per_address: float | None = None
    per_key: float | None = None
    burst: float = 1.0


class _RuleLimiters:
    """The buckets of one rule."""

    __slots__ = ("addresses", "keys", "rule")

    def __init__(self, rule: RateRule, clock: Clock) -> None:
        self.rule = rule
        self.addresses = _limiter(rule.per_address, rule.burst, clock)
        self.keys = _limiter(rule.per_key, rule.burst, clock)


def _limiter(rate: float | None, burst: float, clock: Clock) -> RateLimiter | None:
    return None if rate is None else RateLimiter(rate, burst, clock=clock)


class RateLimits:
    """Per-path-prefix token buckets for remote address groups and client keys.

    A request takes a token from its address group's bucket and, when it
    presents a certificate, from its key's bucket, of the rule with the
    longest prefix of its path; both must grant it.  Paths under no rule are
    not limited.
    """

    __slots__ = ("_rules",)

    def __init__(self, rules: Iterable[RateRule], *, clock: Clock = time.monotonic) -> None:
        ordered = sorted(rules, key=lambda rule: len(rule.path), reverse=True)
        self._rules = [_RuleLimiters(rule, clock) for rule in ordered]

    def inherit(self, old: RateLimits) -> None:
        """Keep ``old``'s buckets of every unchanged rule (a reload must not reset them)."""
        previous = {limiters.rule: limiters for limiters in old._rules}
        self._rules = [previous.get(limiters.rule, limiters) for limiters in self._rules]

    def take(self, path: str, address: Hashable | None, key: Hashable | None) -> float:
        """Count one request for ``path``: 0.0 if granted, else the seconds to wait.

        ``address`` is the address group (None: a trusted address, not limited
        at all); ``key`` the client key (None: no certificate).
        """
        if address is None:
            return 0.0
        for limiters in self._rules:
            if path.startswith(limiters.rule.path):
                break
        else:
            return 0.0
        wait = 0.0
        if limiters.addresses is not None:
            wait = limiters.addresses.take(address)
        # The key's token is spent only when the address's bucket granted its own,
        # so refusals by address do not drain the key's budget.
        if wait == 0.0 and key is not None and limiters.keys is not None:
            wait = limiters.keys.take(key)
        return wait


@dataclass(slots=True)
class _Record:
    strikes: int = 0
    told_until: float = 0.0
    level: int = 0
    blocked_until: float = 0.0


class Blocks:
    """Escalating blocks of address groups that ignore ``44``.

    A *strike* is a request refused with 44 that arrives before the wait the
    group was last told has passed: a client honouring 44 never earns one.
    ``after`` strikes in a row block the group for ``first`` seconds; each
    further block of the same group doubles the period, up to ``longest``; a
    group that stays unblocked for ``longest`` starts again from ``first``.
    ``after = 0`` disables blocking.
    """

    __slots__ = ("_clock", "_records", "after", "first", "longest", "max_keys")

    def __init__(
        self,
        after: int = 10,
        first: float = 60.0,
        longest: float = 86400.0,
        *,
        max_keys: int = MAX_KEYS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.after = after
        self.first = first
        self.longest = longest
        self.max_keys = max_keys
        self._clock = clock
        self._records: OrderedDict[Hashable, _Record] = OrderedDict()

    def configure(self, after: int, first: float, longest: float) -> None:
        """Change the thresholds (on reload), keeping every record and block in force."""
        self.after, self.first, self.longest = after, first, longest

    def blocked(self, key: Hashable) -> float:
        """Seconds left of ``key``'s block, or 0.0 when it is not blocked (one dict lookup)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        left = record.blocked_until - self._clock()
        return left if left > 0 else 0.0

    def refused(self, key: Hashable, wait: float) -> float:
        """Record that ``key`` was answered 44 with ``wait``; returns a new block's period, or 0."""
        if self.after <= 0:
            return 0.0
        now = self._clock()
        records = self._records
        record = records.pop(key, None)
        if record is None:
            record = _Record()
        records[key] = record
        if len(records) > self.max_keys:
            records.popitem(last=False)
        record.strikes = record.strikes + 1 if now < record.told_until else 0
        record.told_until = max(record.told_until, now + wait)
        if record.strikes < self.after:
            return 0.0
        if record.level and now - record.blocked_until > self.longest:
            record.level = 0
        period = min(self.first * 2.0 ** min(record.level, 64), self.longest)
        record.level += 1
        record.strikes = 0
        record.blocked_until = now + period
        return period

    def __len__(self) -> int:
        return len(self._records)
