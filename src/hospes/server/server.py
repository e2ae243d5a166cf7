"""The server: listeners, the accept loop, the deadline sweep, reloads and a graceful shutdown.

It is the first line of defence: every accepted connection goes through
:class:`~hospes.server.admission.Admission` before any TLS work, and a refused
one is closed with a reset.  Behind a load balancer (``proxies``), only the
proxies may connect, each connection starts with a PROXY header
(:class:`~hospes.server.proxied.AwaitingHeader`), and admission decides by
the client's address the header gives.  Admitted connections
(:class:`~hospes.server.connection.Connection`) run by themselves and report
back through the small :class:`~hospes.server.connection.Owner` interface this
class implements.

Deadlines are checked by one sweep over the open connections four times a
second rather than by a timer per connection: creating and cancelling timers
was a measurable part of each request's cost, and a timeout may well fire a
quarter of a second late.  Time comes from the clock the server is given
(:func:`time.monotonic` by default); with a
:class:`~hospes.policy.clock.ManualClock`, a test advances the clock and calls
:meth:`Server.sweep` itself.  Whatever happens is counted in :class:`Stats`, and the
last refused requests (6x, 44) are kept in :class:`~hospes.server.refusals.RecentRefusals`.
:meth:`Server.reconfigure` swaps in new TLS contexts, dispatcher and limits for
new connections while open ones finish on theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable

from ..app.dispatch import Dispatcher
from ..policy.addresses import AddressError, AddressSet, format_group, parse_address
from ..policy.clock import Clock
from ..policy.limits import Limits
from ..policy.ratelimit import Blocks
from .accesslog import AccessLog
from .admission import Admission, AdmissionRules, Refusal
from .connection import Connection, Setup
from .listen import bind_all, connection_ceiling
from .proxied import AwaitingHeader
from .proxy import ProxyHeader
from .refusals import RecentRefusals
from .stats import Stats
from .tls import ServerContexts

__all__ = ["Server"]

log = logging.getLogger("hospes.server")

_LINGER_RESET = struct.pack("ii", 1, 0)
_ACCEPT_BATCH = 64
_SWEEP_INTERVAL = 0.25
"""Seconds between two checks of every connection's deadline."""


def _rules(limits: Limits, deny: AddressSet) -> AdmissionRules:
    return AdmissionRules(
        deny=deny,
        trusted=AddressSet(limits.trusted),
        max_connections=connection_ceiling(limits.max_connections),
        max_per_group=limits.max_connections_per_address,
        ipv6_prefix=limits.ipv6_prefix,
    )


class Server:
    """A Gemini server: listening sockets, TLS contexts, a dispatcher, limits and deny lists."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        contexts: ServerContexts,
        *,
        limits: Limits | None = None,
        access_log: AccessLog | None = None,
        deny: AddressSet | None = None,
        proxies: AddressSet | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """Raises :class:`~hospes.policy.addresses.AddressError` for a malformed trusted network.

        ``proxies``: the load balancers in front of this server; when not
        empty, only they may connect, and every connection must start with a
        PROXY header.
        """
        limits = limits or Limits()
        self.clock = clock
        """Where every deadline, block and eviction age of this server reads the time."""
        self.access_log = access_log or AccessLog()
        self.stats = Stats()
        self.refusals = RecentRefusals()
        """The last requests answered 6x or 44 (the admin capsule's overview)."""
        self.blocks = Blocks(
            limits.block_after, limits.block_first, limits.block_longest, clock=clock
        )
        self.admission = Admission(_rules(limits, deny or AddressSet()), self.blocks, clock)
        self._setup = Setup(dispatcher, contexts, limits)
        self.proxies = proxies or AddressSet()
        """The proxies whose connections start with a PROXY header (empty: direct clients)."""
        self.sockets: list[socket.socket] = []
        self._connections: set[Connection | AwaitingHeader] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher new connections are answered by."""
        return self._setup.dispatcher

    @property
    def contexts(self) -> ServerContexts:
        """The TLS contexts new connections get."""
        return self._setup.contexts

    @property
    def limits(self) -> Limits:
        """The limits new connections get."""
        return self._setup.limits

    @property
    def deny(self) -> AddressSet:
        """The addresses refused at accept."""
        return self.admission.rules.deny

    def reconfigure(
        self,
        *,
        dispatcher: Dispatcher | None = None,
        contexts: ServerContexts | None = None,
        limits: Limits | None = None,
        deny: AddressSet | None = None,
        proxies: AddressSet | None = None,
    ) -> None:
        """Serve new connections with what is given; open connections finish on what they had.

        Blocks in force and connection counts are kept.  Raises
        :class:`~hospes.policy.addresses.AddressError` (before changing anything) for a
        malformed trusted network.
        """
        old = self._setup
        limits = limits or old.limits
        rules = _rules(limits, self.deny if deny is None else deny)
        self._setup = Setup(dispatcher or old.dispatcher, contexts or old.contexts, limits)
        self.admission.rules = rules
        self.blocks.configure(limits.block_after, limits.block_first, limits.block_longest)
        if proxies is not None and bool(proxies) != bool(self.proxies):
            self.proxies = proxies
            for listener in self.sockets:  # a direct server goes behind a proxy, or back
                if self._loop is not None and listener.fileno() >= 0:
                    self._loop.add_reader(listener.fileno(), self._acceptor(), listener)
        elif proxies is not None:
            self.proxies = proxies

    # -- listening ----------------------------------------------------------------------

    async def start(
        self,
        hosts: Iterable[str] = ("127.0.0.1",),
        port: int = 1965,
        *,
        backlog: int = 4096,
        reuse_port: bool = False,
        sockets: Iterable[socket.socket] = (),
    ) -> None:
        """Listen on every address of ``hosts`` at ``port``, or on ``sockets``.

        Port 0 is one free port for all of them; ``sockets`` are bound ones,
        listened on here.
        """
        self._loop = asyncio.get_running_loop()
        listeners = list(sockets) or bind_all(
            hosts, port, backlog=backlog, reuse_port=reuse_port, listen=False
        )
        for listener in listeners:
            listener.listen(backlog)
            listener.setblocking(False)
            self._loop.add_reader(listener.fileno(), self._acceptor(), listener)
            self.sockets.append(listener)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(_SWEEP_INTERVAL, self._sweep_periodically)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs actually listened on."""
        return [listener.getsockname()[:2] for listener in self.sockets]

    def _accept(self, listener: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        setup = self._setup
        admit = self.admission.admit
        connections = self._connections
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._accept_failed(listener, exc)
                return
            address = peer[0]
            key = admit(address, len(connections))
            if isinstance(key, Refusal):
                self._refuse(sock, key.reason)
                continue
            self.stats.accepted += 1
            try:
                sock.setblocking(False)
                connection = Connection(self, setup, loop, sock, address, peer[1], key)
            except Exception:
                log.exception("cannot set up a connection from %s", address)
                sock.close()
                continue
            connections.add(connection)
            self.admission.opened(connection, key)
            connection.start()

    def _acceptor(self) -> Callable[[socket.socket], None]:
        """The accept callback: a separate one behind a proxy, so the direct one stays lean."""
        return self._accept_proxied if self.proxies else self._accept

    def _accept_proxied(self, listener: socket.socket) -> None:
        """Accept the proxies' connections (and refuse anyone else's), awaiting their headers."""
        loop = self._loop
        assert loop is not None
        setup = self._setup
        proxies = self.proxies
        connections = self._connections
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._accept_failed(listener, exc)
                return
            address = peer[0]
            try:
                value: int | None = parse_address(address)
            except AddressError:
                value = None
            if value not in proxies:
                self._refuse(sock, "not_a_proxy")
                continue
            full = self.admission.admit_proxy(len(connections))
            if full is not None:
                self._refuse(sock, full.reason)
                continue
            self.stats.accepted += 1
            try:
                sock.setblocking(False)
                waiting = AwaitingHeader(self, setup, loop, sock, address, peer[1])
            except Exception:
                log.exception("cannot set up a connection from the proxy %s", address)
                sock.close()
                continue
            connections.add(waiting)
            self.admission.opened(waiting, None)
            waiting.start()

    def proxied(self, waiting: AwaitingHeader, header: ProxyHeader) -> None:
        """A proxy's header is read: admit its client by address, then start TLS with it.

        A ``LOCAL`` header (a health check) is counted and closed.  The TLS
        handshake keeps the deadline counted from the proxy's connect.
        """
        if header.local:
            self.stats.health_checks += 1
            waiting.close()
            return
        address, port = header.source or (waiting.address, waiting.port)
        sock = waiting.sock
        self._connections.discard(waiting)
        self.admission.closed(waiting, None)
        waiting.fd = -1  # handed over: the Connection owns the socket now
        key = self.admission.admit(address, len(self._connections))
        if isinstance(key, Refusal):
            self._refuse(sock, key.reason)
            self._maybe_drained()
            return
        loop = self._loop
        assert loop is not None
        try:
            connection = Connection(self, waiting.setup, loop, sock, address, port, key)
        except Exception:
            log.exception("cannot set up a connection from %s", address)
            sock.close()
            self._maybe_drained()
            return
        connection.accepted, connection.deadline = waiting.accepted, waiting.deadline
        self._connections.add(connection)
        self.admission.opened(connection, key)
        connection.start()

    def _refuse(self, sock: socket.socket, reason: str) -> None:
        """Close a connection at once, with a reset so it costs no TIME_WAIT."""
        self.stats.refused[reason] += 1
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()

    def _accept_failed(self, listener: socket.socket, exc: OSError) -> None:
        """Out of file descriptors (or similar): pause accepting briefly instead of spinning."""
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            self.stats.refused["out_of_resources"] += 1
            log.error("accept failed (%s); pausing new connections for 0.1 s", exc.strerror)
            assert self._loop is not None
            fd = listener.fileno()
            self._loop.remove_reader(fd)
            self._loop.call_later(0.1, self._resume_accepting, listener)
        elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
            log.warning("accept failed: %s", exc)

    def _resume_accepting(self, listener: socket.socket) -> None:
        """Accept again after a pause, on the path in force (behind a proxy: the proxied one)."""
        if not self._closing and self._loop is not None and listener.fileno() >= 0:
            self._loop.add_reader(listener.fileno(), self._acceptor(), listener)

    # -- deadlines ----------------------------------------------------------------------

    def sweep(self) -> None:
        """Drop every connection whose deadline has passed by the server's clock.

        A timer calls this every quarter of a second once the server has
        started; a test that drives a manual clock may call it at once.
        """
        now = self.clock()
        for connection in [c for c in self._connections if c.deadline <= now]:
            connection.abort(f"{connection.phase}_timeout")

    def _sweep_periodically(self) -> None:
        assert self._loop is not None
        self.sweep()
        self._sweeper = self._loop.call_later(_SWEEP_INTERVAL, self._sweep_periodically)

    # -- what connections report (the Owner interface) ------------------------------------

    def request_received(self, connection: Connection) -> None:
        """``connection`` has its request line: it no longer waits (nor can be evicted)."""
        self.admission.requested(connection)

    def slowed_down(self, connection: Connection, wait: float) -> None:
        """A request was answered 44 by the rate limits: count a strike against its address."""
        key = connection.key
        if key is None:
            return
        period = self.blocks.refused(key, wait)
        if period:
            self.stats.blocks += 1
            log.warning(
                "blocking %s for %d s: it kept ignoring 44 (slow down)",
                format_group(key, connection.setup.limits.ipv6_prefix),
                period,
            )

    def closed(self, connection: Connection | AwaitingHeader) -> None:
        """``connection`` is closed: forget it."""
        self._connections.discard(connection)
        self.admission.closed(connection, connection.key)
        self._maybe_drained()

    def _maybe_drained(self) -> None:
        if self._closing and not self._connections:
            self._drained.set()

    @property
    def connection_count(self) -> int:
        """Connections open right now."""
        return len(self._connections)

    # -- shutdown -----------------------------------------------------------------------

    def stop_listening(self) -> None:
        """Stop accepting new connections; open ones carry on."""
        for listener in self.sockets:
            if self._loop is not None and listener.fileno() >= 0:
                self._loop.remove_reader(listener.fileno())
            listener.close()
        self.sockets.clear()

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish for ``grace`` seconds, close the rest."""
        self._closing = True
        self.stop_listening()
        if self._connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._drained.wait(),
                    self.limits.shutdown_grace if grace is None else grace,
                )
        for connection in list(self._connections):
            connection.abort("shutdown")
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await asyncio.sleep(0)
        self.access_log.flush()
