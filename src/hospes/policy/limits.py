"""A server's deadlines, connection caps and blocking thresholds, as one immutable value.

The configuration builds it, the server applies it; a reload swaps in a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TRUSTED", "Limits"]

DEFAULT_TRUSTED = ("127.0.0.0/8", "::1")


@dataclass(frozen=True, slots=True)
class Limits:
    """Deadlines, caps and blocking thresholds of a server (seconds, bytes/second, counts)."""

    handshake_timeout: float = 5.0
    """From accept to the end of the TLS handshake."""
    request_timeout: float = 10.0
    """From accept to the complete request line; a trickle of bytes does not extend it."""
    response_timeout: float = 30.0
    """For the handler to produce its response (and each chunk of a streamed body)."""
    write_timeout: float = 10.0
    """Floor of the time a client may take to read a response..."""
    write_rate: float = 16 * 1024
    """...plus one second per this many bytes of it."""
    max_connections: int = 1024
    """Concurrent connections; more are refused before the handshake."""
    max_connections_per_address: int = 32
    """Concurrent connections from one address group."""
    ipv6_prefix: int = 64
    """IPv6 addresses are capped, rate-limited and blocked by this prefix (a subscriber's /64)."""
    block_after: int = 10
    """Requests in a row that ignore a 44 before the address group is blocked (0: never block)."""
    block_first: float = 60.0
    """The first block's length; each further block of the same group doubles it..."""
    block_longest: float = 86400.0
    """...up to this."""
    shutdown_grace: float = 10.0
    """How long in-flight requests may finish after SIGTERM / Ctrl-C."""
    trusted: tuple[str, ...] = DEFAULT_TRUSTED
    """Addresses and networks never capped per address, rate-limited or blocked."""
