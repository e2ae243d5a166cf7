"""A connection from a trusted proxy, from accept until its PROXY header is read (before TLS).

Behind a load balancer, every connection comes from the balancer; the client's
address comes first on the connection, in a PROXY header (v1 or v2,
:mod:`hospes.server.proxy`).  :class:`AwaitingHeader` reads exactly that
header and not one byte more (the ClientHello that follows is OpenSSL's to
read from the socket): it peeks at what has arrived, and consumes bytes only
once it knows they belong to the header.  It runs under the handshake deadline
counted from accept, so a proxy that sends nothing, or a trickle, is dropped
like a client stuck in its handshake.  Then its server takes over: the client's
address decides admission (deny list, blocks, caps) as a direct connection's
would, and the TLS connection starts with that address for logs, rate limits
and ``REMOTE_ADDR``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Protocol

from ..policy.clock import Clock
from .connection import Setup
from .proxy import MAX_LENGTH, ProxyHeader, ProxyHeaderError, parse_proxy_header
from .stats import Stats

__all__ = ["AwaitingHeader", "HeaderOwner"]

log = logging.getLogger("hospes.server")

_LINGER_RESET = struct.pack("ii", 1, 0)


class HeaderOwner(Protocol):
    """What a connection awaiting its header needs of its server."""

    clock: Clock
    stats: Stats

    def proxied(self, waiting: AwaitingHeader, header: ProxyHeader) -> None:
        """The header is read: the socket is the client's from here (``waiting`` is done)."""

    def closed(self, connection: AwaitingHeader) -> None:
        """The socket is closed: forget ``connection``."""


class AwaitingHeader:
    """A proxy's connection, until the PROXY header before the client's bytes is read."""

    __slots__ = (
        "accepted",
        "address",
        "buffer",
        "deadline",
        "fd",
        "key",
        "loop",
        "owner",
        "phase",
        "port",
        "setup",
        "sock",
    )

    def __init__(  # noqa: PLR0917 - mirrors Connection
        self,
        owner: HeaderOwner,
        setup: Setup,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        address: str,
        port: int,
    ) -> None:
        self.owner = owner
        self.setup = setup
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        """The proxy's address (the client's is in the header)."""
        self.port = port
        self.key = None
        """No address group: the proxy is neither capped nor blocked, its clients are."""
        self.buffer = b""
        self.phase = "proxy"
        self.accepted = owner.clock()
        self.deadline = self.accepted + setup.limits.handshake_timeout

    def start(self) -> None:
        """Start reading; the header has usually arrived with the connection."""
        self.loop.add_reader(self.fd, self._on_readable)
        self._on_readable()

    def _on_readable(self) -> None:
        try:
            peeked = self.sock.recv(MAX_LENGTH - len(self.buffer), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort("reset_before_proxy_header")
            return
        if not peeked:
            self.abort("closed_before_proxy_header")
            return
        data = self.buffer + peeked
        try:
            header = parse_proxy_header(data)
        except ProxyHeaderError as exc:
            log.debug("dropped a connection from the proxy %s: %s", self.address, exc)
            self.abort("proxy_header_invalid")
            return
        try:
            if header is None:
                # All of it is header: take it off the socket, or it stays readable for ever.
                self.sock.recv(len(peeked))
                self.buffer = data
                return
            self.sock.recv(header.length - len(self.buffer))
        except OSError:
            self.abort("reset_before_proxy_header")
            return
        self.loop.remove_reader(self.fd)
        self.owner.proxied(self, header)

    def abort(self, reason: str) -> None:
        """Drop the connection (no valid header in time, or the server is shutting down)."""
        if self.fd < 0:
            return
        self.owner.stats.dropped[reason] += 1
        self.close(reset=True)

    def close(self, *, reset: bool = False) -> None:
        """Close the socket (``reset``: with a reset, so it costs no TIME_WAIT) and say so."""
        if self.fd < 0:
            return
        self.loop.remove_reader(self.fd)
        if reset:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.sock.close()
        self.fd = -1
        self.owner.closed(self)
