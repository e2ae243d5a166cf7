"""The counters a server keeps: what it accepted, refused, dropped and answered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Stats"]


@dataclass(slots=True)
class Stats:
    """Counters a server keeps since start-up (for tests, the soak script and operators)."""

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
