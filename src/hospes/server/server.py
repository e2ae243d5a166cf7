"""The connection loop: accept, TLS, read the request line, respond, close_notify, close.

This is the hot path (Gemini opens one TLS connection per request), so it is
written against raw non-blocking sockets and readiness callbacks rather than
asyncio streams: OpenSSL reads and writes the socket itself, the handshake and
the request line are driven by one reader callback, and only the response runs
as a task (handlers may be coroutines).

It is also the first line of defence.  Before any TLS work, an accepted
connection is refused (with a reset) when its address is on the deny list or
blocked, or over the global or per-address caps; at the global cap, the oldest
connection that has not yet sent its request (a slowloris) makes way for the
new one.  Every connection has one deadline, moved by phase: the
handshake and the request line are timed from accept (a trickle of bytes does
not extend them), the handler has its own timeout, and writes get a budget
proportional to the response's size with a floor.  Deadlines are checked by
one sweep over the open connections four times a second rather than by a
timer per connection: creating and cancelling timers was a measurable part
of each request's cost, and a timeout may well fire a quarter of a second
late.  Whatever happens is counted
in :class:`Stats`.  :meth:`Server.reconfigure` swaps in new TLS contexts,
dispatcher and limits for new connections while open ones finish on theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import struct
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from OpenSSL import SSL

from ..app.dispatch import Dispatcher, Outcome
from ..app.response import Response
from ..gemini.escape import printable
from ..gemini.fingerprint import fingerprint
from ..gemini.protocol import GeminiError, RequestReader, Status
from ..policy.addresses import AddressError, AddressSet, format_group, group, parse_address
from ..policy.limits import Limits
from ..policy.ratelimit import Blocks
from .accesslog import AccessLog
from .tls import ServerContexts, peer_certificate_der

__all__ = ["Server", "Stats", "bind", "raise_open_file_limit"]

log = logging.getLogger("hospes.server")

_LINGER_RESET = struct.pack("ii", 1, 0)
_ACCEPT_BATCH = 64
_READ_SIZE = 2048
_FD_RESERVE = 64
"""File descriptors kept for listeners, the store, logs and files being served (at most a
quarter of the limit)."""
_SWEEP_INTERVAL = 0.25
"""Seconds between two checks of every connection's deadline."""
_EVICT_AGE = 1.0
"""How long a connection must have waited for its request line before a new one displaces it."""


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
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class _Setup:
    """What a connection is served with, fixed at accept: a reload swaps in a new one."""

    dispatcher: Dispatcher
    contexts: ServerContexts
    limits: Limits
    deny: AddressSet
    trusted: AddressSet
    max_connections: int


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to the hard limit; returns the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft


def _connection_ceiling(wanted: int) -> int:
    """``wanted`` connections, or fewer if the open-file limit could not hold them."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = min(_FD_RESERVE, soft // 4)
    if soft == resource.RLIM_INFINITY or wanted <= soft - reserve:
        return wanted
    ceiling = max(1, soft - reserve)
    log.warning(
        "max_connections %d does not fit the open-file limit (%d); using %d",
        wanted,
        soft,
        ceiling,
    )
    return ceiling


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
    ) -> None:
        limits = limits or Limits()
        self._setup = self._make_setup(dispatcher, contexts, limits, deny or AddressSet())
        self.access_log = access_log or AccessLog()
        self.stats = Stats()
        self.blocks = Blocks(limits.block_after, limits.block_first, limits.block_longest)
        self.sockets: list[socket.socket] = []
        self._connections: set[_Connection] = set()
        self._waiting: dict[_Connection, None] = {}
        """Connections still in the handshake or the request line, oldest first."""
        self._per_address: Counter[Hashable] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()

    @staticmethod
    def _make_setup(
        dispatcher: Dispatcher, contexts: ServerContexts, limits: Limits, deny: AddressSet
    ) -> _Setup:
        return _Setup(
            dispatcher,
            contexts,
            limits,
            deny,
            AddressSet(limits.trusted),
            _connection_ceiling(limits.max_connections),
        )

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
        return self._setup.deny

    def reconfigure(
        self,
        *,
        dispatcher: Dispatcher | None = None,
        contexts: ServerContexts | None = None,
        limits: Limits | None = None,
        deny: AddressSet | None = None,
    ) -> None:
        """Serve new connections with what is given; open connections finish on what they had.

        Blocks in force and connection counts are kept.  Raises
        :class:`~hospes.policy.addresses.AddressError` (before changing anything) for a
        malformed trusted network.
        """
        old = self._setup
        limits = limits or old.limits
        self._setup = self._make_setup(
            dispatcher or old.dispatcher,
            contexts or old.contexts,
            limits,
            old.deny if deny is None else deny,
        )
        self.blocks.configure(limits.block_after, limits.block_first, limits.block_longest)

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
        """Listen on every address of ``hosts`` at ``port`` (0: a free port), or on ``sockets``."""
        self._loop = asyncio.get_running_loop()
        listeners = list(sockets)
        if not listeners:
            for host in hosts:
                listeners.extend(bind(host, port, backlog=backlog, reuse_port=reuse_port))
        for listener in listeners:
            listener.setblocking(False)
            self._loop.add_reader(listener.fileno(), self._accept, listener)
            self.sockets.append(listener)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(_SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        """Drop every connection whose deadline has passed, then come back in a while."""
        assert self._loop is not None
        now = self._loop.time()
        for connection in [c for c in self._connections if c.deadline <= now]:
            connection.abort(f"{connection.phase}_timeout")
        self._sweeper = self._loop.call_later(_SWEEP_INTERVAL, self._sweep)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs actually listened on."""
        return [listener.getsockname()[:2] for listener in self.sockets]

    def _accept(self, listener: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        setup = self._setup
        limits = setup.limits
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
            key: Hashable | None
            try:
                value = parse_address(address)
            except AddressError:
                key = address
            else:
                if setup.deny and value in setup.deny:
                    self._refuse(sock, "denied")
                    continue
                key = None if value in setup.trusted else group(value, limits.ipv6_prefix)
            if key is not None:
                if self.blocks.blocked(key):
                    self._refuse(sock, "blocked")
                    continue
                if self._per_address[key] >= limits.max_connections_per_address:
                    self._refuse(sock, "max_connections_per_address")
                    continue
            if len(connections) >= setup.max_connections and not self._evict(loop.time()):
                self._refuse(sock, "max_connections")
                continue
            self.stats.accepted += 1
            try:
                sock.setblocking(False)
                connection = _Connection(self, setup, loop, sock, address, peer[1], key)
            except Exception:
                log.exception("cannot set up a connection from %s", address)
                sock.close()
                continue
            connections.add(connection)
            self._waiting[connection] = None
            if key is not None:
                self._per_address[key] += 1
            connection.start()

    def _evict(self, now: float) -> bool:
        """Drop the oldest connection still without a request line, if it waited long enough."""
        for oldest in self._waiting:
            if now - oldest.accepted < _EVICT_AGE:
                return False
            oldest.abort("evicted")
            return True
        return False

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
        if not self._closing and self._loop is not None and listener.fileno() >= 0:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _slowed(self, connection: _Connection, wait: float) -> None:
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

    def _forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        self._waiting.pop(connection, None)
        key = connection.key
        if key is not None:
            remaining = self._per_address[key] - 1
            if remaining > 0:
                self._per_address[key] = remaining
            else:
                del self._per_address[key]
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


class _Connection:
    """One client connection, from accept to close."""

    __slots__ = (
        "accepted",
        "address",
        "deadline",
        "fd",
        "handshaken",
        "key",
        "loop",
        "phase",
        "port",
        "reader",
        "reason",
        "server",
        "setup",
        "sock",
        "task",
        "tls",
        "write_budget",
    )

    def __init__(  # noqa: PLR0917 - private, called from one place
        self,
        server: Server,
        setup: _Setup,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        address: str,
        port: int,
        key: Hashable | None,
    ) -> None:
        self.server = server
        self.setup = setup
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.port = port
        self.key = key
        self.tls = setup.contexts.connection(sock)
        self.reader = RequestReader()
        self.handshaken = False
        self.task: asyncio.Task[None] | None = None
        self.phase = "handshake"
        self.reason = ""
        self.write_budget = 0.0
        self.accepted = loop.time()
        self.deadline = self.accepted + setup.limits.handshake_timeout

    def start(self) -> None:
        self.loop.add_reader(self.fd, self._on_readable)
        # The ClientHello has usually arrived by the time the connection is accepted.
        self._on_readable()

    # -- reading the request --------------------------------------------------------------

    def _on_readable(self) -> None:
        tls = self.tls
        line: bytes | None = None
        error: GeminiError | None = None
        try:
            if not self.handshaken:
                tls.do_handshake()
                self.handshaken = True
                self.phase = "request"
                self.deadline = self.accepted + self.setup.limits.request_timeout
            while line is None:
                line = self.reader.feed(tls.recv(_READ_SIZE))
        except SSL.WantReadError:
            return
        except SSL.WantWriteError:
            self.loop.remove_reader(self.fd)
            self.loop.add_writer(self.fd, self._resume_reading)
            return
        except GeminiError as exc:
            error = exc
        except SSL.ZeroReturnError:
            self.abort("closed_before_request")
            return
        except (SSL.Error, OSError):
            self.abort("tls_error" if not self.handshaken else "reset_before_request")
            return
        self.loop.remove_reader(self.fd)
        self.server._waiting.pop(self, None)
        self.phase = "response"
        self.task = self.loop.create_task(self._respond(line, error))

    def _resume_reading(self) -> None:
        self.loop.remove_writer(self.fd)
        self.loop.add_reader(self.fd, self._on_readable)
        self._on_readable()

    # -- responding -----------------------------------------------------------------------

    async def _respond(self, line: bytes | None, error: GeminiError | None) -> None:
        server = self.server
        limits = self.setup.limits
        start = self.loop.time()
        self.deadline = start + limits.response_timeout
        status: int | str = "-"
        size = 0
        outcome: Outcome | None = None
        certificate = peer_certificate_der(self.tls)
        try:
            dispatcher = self.setup.dispatcher
            if error is not None:
                outcome = dispatcher.reject(error, "-", certificate, address_key=self.key)
            else:
                assert line is not None
                outcome = await dispatcher.respond(
                    line, certificate, self.address, self.port, address_key=self.key
                )
            if outcome.slowed:
                server._slowed(self, outcome.slowed)
            response = outcome.response
            try:
                header = response.header()
            except ValueError as exc:
                log.error("invalid response for %s: %s", outcome.target, exc)
                response = Response(
                    Status.TEMPORARY_FAILURE, "the application sent an invalid response"
                )
                header = response.header()
            status = response.status
            self.write_budget = limits.write_timeout
            size = await self._send_response(header, response, limits)
            server.stats.responses[response.status] += 1
            await self._close_notify()
        except asyncio.CancelledError:
            reason = self.reason or "cancelled"
            status = reason if status == "-" else f"{status}+{reason}"
            server.stats.dropped[reason] += 1
        except (SSL.Error, OSError):
            status = f"{status}+reset" if status != "-" else "reset"
            server.stats.dropped["reset_during_response"] += 1
        except Exception:
            log.exception("error while answering %s", self.address)
            status = "error"
        finally:
            if outcome is not None:
                await _close_body(outcome.response.body)
                who, target = outcome.fingerprint, outcome.target
            else:
                # Cancelled (or failed) before the dispatcher answered: log what was asked.
                who = None if certificate is None else fingerprint(certificate)
                target = "-" if line is None else printable(line.decode("utf-8", "replace"), 1024)
            server.access_log.record(
                remote=f"{self.address}:{self.port}",
                fingerprint=who,
                target=target,
                status=status,
                size=size,
                seconds=self.loop.time() - start,
            )
            self._close()

    async def _send_response(self, header: bytes, response: Response, limits: Limits) -> int:
        """Send the header and, for 2x, the body; returns the body size sent."""
        body = response.body if 20 <= response.status <= 29 else None
        if body is None:
            await self._send(header, limits)
            return 0
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes):
            await self._send(header + body, limits)
            return len(body)
        await self._send(header, limits)
        size = 0
        iterator = aiter(body)
        while True:
            # The handler has response_timeout to produce each chunk of a streamed body.
            self.phase = "response"
            self.deadline = self.loop.time() + limits.response_timeout
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return size
            await self._send(chunk, limits)
            size += len(chunk)

    async def _send(self, data: bytes, limits: Limits) -> None:
        """Send ``data``; the whole response's writes share one budget (see Limits.write_rate)."""
        loop = self.loop
        self.phase = "write"
        self.write_budget += len(data) / limits.write_rate
        began = loop.time()
        self.deadline = began + self.write_budget
        view = memoryview(data)
        tls = self.tls
        try:
            while view:
                try:
                    sent = tls.send(view)
                except SSL.WantWriteError:
                    await self._wait(writable=True)
                except SSL.WantReadError:
                    await self._wait(writable=False)
                else:
                    view = view[sent:]
        finally:
            self.write_budget -= loop.time() - began

    async def _close_notify(self) -> None:
        """Send the TLS close_notify that tells the client the response is complete."""
        for _ in range(4):
            try:
                self.tls.shutdown()
                return
            except SSL.WantWriteError:
                await self._wait(writable=True)
            except SSL.WantReadError:
                return

    async def _wait(self, *, writable: bool) -> None:
        waiter = self.loop.create_future()
        register = self.loop.add_writer if writable else self.loop.add_reader
        unregister = self.loop.remove_writer if writable else self.loop.remove_reader
        register(self.fd, _wake, waiter)
        try:
            await waiter
        finally:
            unregister(self.fd)

    # -- closing --------------------------------------------------------------------------

    def abort(self, reason: str) -> None:
        """Drop the connection without a complete response (deadlines, TLS failures, shutdown)."""
        if self.task is not None and not self.task.done():
            self.reason = reason
            self.task.cancel()
            return
        if self.fd < 0:
            return
        self.server.stats.dropped[reason] += 1
        self._close()

    def _close(self) -> None:
        if self.fd < 0:
            return
        loop = self.loop
        loop.remove_reader(self.fd)
        loop.remove_writer(self.fd)
        with contextlib.suppress(OSError):
            # Unread bytes (anything after the CRLF) would turn close() into a reset
            # that can destroy the response in the client's buffers.
            for _ in range(16):
                if not self.sock.recv(65536):
                    break
        self.sock.close()
        self.fd = -1
        self.server._forget(self)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _close_body(body: object) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


def bind(
    host: str, port: int, *, backlog: int = 4096, reuse_port: bool = False
) -> list[socket.socket]:
    """Listening sockets for every address of ``host`` (``::`` is dual-stack where possible)."""
    sockets: list[socket.socket] = []
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen = set()
    for family, kind, proto, _, address in infos:
        if (family, address) in seen:
            continue
        seen.add((family, address))
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                wildcard = address[0] == "::"
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if wildcard else 1)
            listener.bind(address)
            listener.listen(backlog)
        except OSError:
            listener.close()
            for opened in sockets:
                opened.close()
            raise
        sockets.append(listener)
        if port == 0:
            port = listener.getsockname()[1]
    return sockets
