"""The last requests a server refused (6x and 44): what the admin capsule's overview lists.

The request path only appends a tuple of what it already holds to a bounded
deque, and only for a refusal; turning entries into :class:`RefusedRequest`
records (the address group written as people read it) happens when someone
reads them: once a second when a worker publishes its counters
(:mod:`hospes.server.counters`), or when the overview is shown.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..policy.addresses import format_group

__all__ = ["KEPT", "RecentRefusals", "RefusedRequest", "newest"]

KEPT = 20
"""Refusals each server process remembers (the oldest go first)."""
_REASON = 160
"""Characters of a refusal's reason kept (a 6x's meta can be 1024 bytes)."""


@dataclass(frozen=True, slots=True)
class RefusedRequest:
    """One refused request: when, from which address group, with which certificate, and why."""

    time: float
    """Seconds since the epoch."""
    group: str
    """The client's address group (``192.0.2.7``, ``2001:db8::/64``); its address if trusted."""
    fingerprint: str | None
    """The certificate presented (valid or not), or None."""
    status: int
    reason: str
    """The response's meta: what the client was told (for 44, the seconds to wait)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the counters' shared memory."""
        return {
            "time": self.time,
            "group": self.group,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefusedRequest:
        """The record :meth:`as_dict` gave."""
        fingerprint = data.get("fingerprint")
        return cls(
            time=float(data["time"]),
            group=str(data["group"]),
            fingerprint=None if fingerprint is None else str(fingerprint),
            status=int(data["status"]),
            reason=str(data["reason"]),
        )


_Entry = tuple[float, str, object, int, str | None, int, str]
"""time, address, address group key, IPv6 prefix, fingerprint, status, meta: as appended."""


class RecentRefusals:
    """The last :data:`KEPT` refusals of one server process, newest last."""

    __slots__ = ("_entries",)

    def __init__(self, kept: int = KEPT) -> None:
        self._entries: deque[_Entry] = deque(maxlen=kept)

    def add(  # noqa: PLR0917 - the request path passes what it holds, as it is
        self,
        address: str,
        key: object,
        ipv6_prefix: int,
        fingerprint: str | None,
        status: int,
        meta: str,
    ) -> None:
        """Remember a refusal (the request path: one tuple appended)."""
        self._entries.append((time.time(), address, key, ipv6_prefix, fingerprint, status, meta))

    def newest(self) -> object:
        """The newest entry as it is kept (compare it with ``is`` to tell whether any came)."""
        return self._entries[-1] if self._entries else None

    def records(self) -> list[RefusedRequest]:
        """The refusals remembered, oldest first."""
        return [
            RefusedRequest(
                moment,
                address if key is None else format_group(key, prefix),
                fingerprint,
                status,
                meta if len(meta) <= _REASON else meta[:_REASON] + "…",
            )
            for moment, address, key, prefix, fingerprint, status, meta in list(self._entries)
        ]


def newest(groups: Iterable[Iterable[RefusedRequest]], limit: int = KEPT) -> list[RefusedRequest]:
    """The ``limit`` newest refusals of several processes, newest first."""
    merged = [record for group in groups for record in group]
    merged.sort(key=lambda record: record.time, reverse=True)
    return merged[:limit]
