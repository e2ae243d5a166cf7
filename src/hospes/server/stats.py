"""The counters a server keeps: what it accepted, refused, dropped and answered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stats"]


@dataclass(slots=True)
class Stats:
    """Counters a server keeps since start-up (for tests, the soak script and operators).

    Incremented in place on the request path (a ``Counter`` increment: the
    cheapest bookkeeping Python has); :meth:`as_dict`, :meth:`from_dict` and
    :meth:`total` carry them across processes (:mod:`hospes.server.counters`).
    """

    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    """Connections refused before the handshake, by reason."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Connections closed without a (complete) response, by reason."""
    responses: Counter[int] = field(default_factory=Counter)
    """Responses sent, by status."""
    blocks: int = 0
    """Address groups blocked for ignoring 44."""
    health_checks: int = 0
    """PROXY ``LOCAL`` connections (a load balancer's health checks), accepted and closed."""

    def summary(self) -> str:
        """One line for the log: every non-zero counter."""
        parts = [f"accepted {self.accepted}"]
        for name, counter in (
            ("responses", self.responses),
            ("refused", self.refused),
            ("dropped", self.dropped),
        ):
            if counter:
                items = ", ".join(f"{key} {value}" for key, value in sorted(counter.items()))
                parts.append(f"{name}: {items}")
        if self.blocks:
            parts.append(f"blocks {self.blocks}")
        if self.health_checks:
            parts.append(f"health checks {self.health_checks}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values (statuses as strings, zeros left out)."""
        return {
            "accepted": self.accepted,
            "refused": {key: value for key, value in self.refused.items() if value},
            "dropped": {key: value for key, value in self.dropped.items() if value},
            "responses": {str(key): value for key, value in self.responses.items() if value},
            "blocks": self.blocks,
            "health_checks": self.health_checks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        """The counters :meth:`as_dict` gave."""
        return cls(
            accepted=int(data.get("accepted", 0)),
            refused=Counter({str(k): int(v) for k, v in data.get("refused", {}).items()}),
            dropped=Counter({str(k): int(v) for k, v in data.get("dropped", {}).items()}),
            responses=Counter({int(k): int(v) for k, v in data.get("responses", {}).items()}),
            blocks=int(data.get("blocks", 0)),
            health_checks=int(data.get("health_checks", 0)),
        )

    @classmethod
    def total(cls, parts: Iterable[Stats]) -> Stats:
        """The sum of several servers' counters (the workers of one supervisor)."""
        total = cls()
        for part in parts:
            total.accepted += part.accepted
            total.refused.update(part.refused)
            total.dropped.update(part.dropped)
            total.responses.update(part.responses)
            total.blocks += part.blocks
            total.health_checks += part.health_checks
        return total
