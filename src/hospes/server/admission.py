"""Who may open a connection: the decision at accept, before any TLS work.

In order, a new connection is refused when its address is on the deny list;
then, unless it is trusted, when its address group is blocked or already has
its share of connections; then, when the server is full, unless the oldest
connection still waiting for its request line has waited long enough to make
way for it (a slowloris holds connections open without ever asking anything).
:class:`Admission` also keeps the counts it decides by: connections per
address group, and the connections still waiting, oldest first.

This is bookkeeping only: the server closes a refused socket and counts why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from ..policy.addresses import AddressError, AddressSet, group, parse_address
from ..policy.clock import Clock
from ..policy.ratelimit import Blocks

__all__ = [
    "BLOCKED",
    "DENIED",
    "EVICT_AGE",
    "FULL",
    "GROUP_FULL",
    "AddressKey",
    "Admission",
    "AdmissionRules",
    "Refusal",
    "Waiting",
]

EVICT_AGE = 1.0
"""How long a connection must have waited for its request line before a new one displaces it."""

AddressKey = int | str
"""An address group (:func:`~hospes.policy.addresses.group`), or an address that did not parse."""


class Waiting(Protocol):
    """A connection as admission sees it: when it was accepted, and how to drop it."""

    @property
    def accepted(self) -> float:
        """The clock's time at accept."""

    def abort(self, reason: str) -> None:
        """Close the connection now; ``reason`` is counted."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection was refused (the name counted in ``Stats.refused``)."""

    reason: str


DENIED = Refusal("denied")
BLOCKED = Refusal("blocked")
GROUP_FULL = Refusal("max_connections_per_address")
FULL = Refusal("max_connections")


@dataclass(frozen=True, slots=True)
class AdmissionRules:
    """What admission decides by; a reload swaps in new ones."""

    deny: AddressSet
    trusted: AddressSet
    max_connections: int
    max_per_group: int
    ipv6_prefix: int


class Admission:
    """Admits or refuses new connections, and counts the open ones it admitted."""

    __slots__ = ("_clock", "_per_group", "_waiting", "blocks", "rules")

    def __init__(self, rules: AdmissionRules, blocks: Blocks, clock: Clock) -> None:
        self.rules = rules
        self.blocks = blocks
        self._clock = clock
        self._per_group: Counter[AddressKey] = Counter()
        self._waiting: dict[Waiting, None] = {}
        """Connections still in the handshake or the request line, oldest first."""

    def admit(self, address: str, open_connections: int) -> AddressKey | Refusal | None:
        """The address key of a new connection from ``address``, or why it is refused.

        The key is None for a trusted address (never capped, limited or blocked).
        At the global cap, this may drop (evict) the oldest waiting connection.
        """
        rules = self.rules
        key: AddressKey | None
        try:
            value = parse_address(address)
        except AddressError:
            key = address
        else:
            if rules.deny and value in rules.deny:
                return DENIED
            key = None if value in rules.trusted else group(value, rules.ipv6_prefix)
        if key is not None:
            if self.blocks.blocked(key):
                return BLOCKED
            if self._per_group[key] >= rules.max_per_group:
                return GROUP_FULL
        if open_connections >= rules.max_connections and not self._evict():
            return FULL
        return key

    def admit_proxy(self, open_connections: int) -> Refusal | None:
        """Whether a trusted proxy's new connection fits (None), or why not.

        Only the global cap applies: the proxy speaks for many clients, and
        each of them is admitted by :meth:`admit` once its PROXY header says who.
        """
        if open_connections >= self.rules.max_connections and not self._evict():
            return FULL
        return None

    def _evict(self) -> bool:
        """Drop the oldest connection still without a request line, if it waited long enough."""
        for oldest in self._waiting:
            if self._clock() - oldest.accepted < EVICT_AGE:
                return False
            oldest.abort("evicted")
            return True
        return False

    def opened(self, connection: Waiting, key: AddressKey | None) -> None:
        """An admitted connection is open and waits for its request line."""
        self._waiting[connection] = None
        if key is not None:
            self._per_group[key] += 1

    def requested(self, connection: Waiting) -> None:
        """The connection's request line is in: it no longer waits (and cannot be evicted)."""
        self._waiting.pop(connection, None)

    def closed(self, connection: Waiting, key: AddressKey | None) -> None:
        """The connection is closed: it no longer counts."""
        self._waiting.pop(connection, None)
        if key is not None:
            remaining = self._per_group[key] - 1
            if remaining > 0:
                self._per_group[key] = remaining
            else:
                del self._per_group[key]

    @property
    def waiting(self) -> int:
        """Connections open and still without a request line."""
        return len(self._waiting)

    def connections_of(self, key: AddressKey) -> int:
        """Connections open from the address group ``key``."""
        return self._per_group[key]
