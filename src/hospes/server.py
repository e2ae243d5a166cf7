"""The connection loop: accept, TLS, read the request line, respond, close_notify, close.

This is the hot path (Gemini opens one TLS connection per request), so it is
written against raw non-blocking sockets and readiness callbacks rather than
asyncio streams: OpenSSL reads and writes the socket itself, the handshake and
the request line are driven by one reader callback, and only the response runs
as a task (handlers may be coroutines).  Every connection has one deadline
timer, moved by phase (handshake, request line from accept, response, writes),
and is counted so that global and per-address caps are enforced before any
TLS work is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from OpenSSL import SSL

from .accesslog import AccessLog
from .dispatch import Dispatcher, Outcome
from .fingerprint import fingerprint
from .protocol import GeminiError, RequestReader, Status
from .response import Response
from .tls import ServerContexts, peer_certificate_der

__all__ = ["Limits", "Server", "Stats"]

log = logging.getLogger("hospes.server")

_LINGER_RESET = struct.pack("ii", 1, 0)
_ACCEPT_BATCH = 64
_READ_SIZE = 2048


@dataclass(frozen=True, slots=True)
class Limits:
    """Deadlines and caps of a server (seconds, bytes/second, counts)."""

    handshake_timeout: float = 5.0
    """From accept to the end of the TLS handshake."""
    request_timeout: float = 10.0
    """From accept to the complete request line; a trickle of bytes does not extend it."""
    response_timeout: float = 30.0
    """For the handler to produce its response."""
    write_timeout: float = 10.0
    """Floor of the deadline for sending a response..."""
    write_rate: float = 16 * 1024
    """...plus one second per this many bytes of it."""
    max_connections: int = 1024
    """Concurrent connections; more are refused before the handshake."""
    max_connections_per_address: int = 32
    """Concurrent connections from one remote address."""
    shutdown_grace: float = 10.0
    """How long in-flight requests may finish after SIGTERM / Ctrl-C."""


@dataclass(slots=True)
class Stats:
    """Counters a server keeps since start-up (for tests, the soak script and operators)."""

    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    """Connections refused before the handshake, by reason."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Connections closed without a response, by reason (timeouts, TLS failures, resets)."""
    responses: Counter[int] = field(default_factory=Counter)
    """Responses sent, by status."""


class Server:
    """A Gemini server: listening sockets, TLS contexts and a dispatcher."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        contexts: ServerContexts,
        *,
        limits: Limits | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.contexts = contexts
        self.limits = limits or Limits()
        self.access_log = access_log or AccessLog()
        self.stats = Stats()
        self.sockets: list[socket.socket] = []
        self._connections: set[_Connection] = set()
        self._per_address: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._drained = asyncio.Event()
        self._stopped = asyncio.Event()

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

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs actually listened on."""
        return [listener.getsockname()[:2] for listener in self.sockets]

    def _accept(self, listener: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        limits = self.limits
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._accept_failed(listener, exc)
                return
            address = peer[0]
            if len(self._connections) >= limits.max_connections:
                self._refuse(sock, "max_connections")
                continue
            if self._per_address[address] >= limits.max_connections_per_address:
                self._refuse(sock, "max_connections_per_address")
                continue
            self.stats.accepted += 1
            try:
                sock.setblocking(False)
                connection = _Connection(self, loop, sock, address, peer[1])
            except Exception:
                log.exception("cannot set up a connection from %s", address)
                sock.close()
                continue
            self._connections.add(connection)
            self._per_address[address] += 1
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
        if not self._closing and self._loop is not None and listener.fileno() >= 0:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        address = connection.address
        remaining = self._per_address[address] - 1
        if remaining > 0:
            self._per_address[address] = remaining
        else:
            del self._per_address[address]
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
        await asyncio.sleep(0)
        self.access_log.flush()
        self._stopped.set()

    async def serve_forever(self) -> None:
        """Run until :meth:`shutdown` completes."""
        await self._stopped.wait()


class _Connection:
    """One client connection, from accept to close."""

    __slots__ = (
        "accepted",
        "address",
        "deadline",
        "fd",
        "handshaken",
        "loop",
        "port",
        "reader",
        "server",
        "sock",
        "task",
        "timer",
        "tls",
    )

    def __init__(
        self,
        server: Server,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        address: str,
        port: int,
    ) -> None:
        self.server = server
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.port = port
        self.tls = server.contexts.connection(sock)
        self.reader = RequestReader()
        self.handshaken = False
        self.task: asyncio.Task[None] | None = None
        self.accepted = loop.time()
        self.deadline = self.accepted + server.limits.handshake_timeout
        self.timer: asyncio.TimerHandle | None = loop.call_at(self.deadline, self._on_deadline)

    def start(self) -> None:
        self.loop.add_reader(self.fd, self._on_readable)
        # The ClientHello has usually arrived by the time the connection is accepted.
        self._on_readable()

    # -- deadlines ----------------------------------------------------------------------

    def _set_deadline(self, when: float) -> None:
        """Move the deadline; the timer is rescheduled only when it has to fire earlier."""
        earlier = when < self.deadline
        self.deadline = when
        if earlier or self.timer is None:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(when, self._on_deadline)

    def _on_deadline(self) -> None:
        self.timer = None
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._on_deadline)
            return
        if self.task is None:
            self.abort("handshake_timeout" if not self.handshaken else "request_timeout")
        else:
            self.task.cancel()

    # -- reading the request --------------------------------------------------------------

    def _on_readable(self) -> None:
        tls = self.tls
        line: bytes | None = None
        error: GeminiError | None = None
        try:
            if not self.handshaken:
                tls.do_handshake()
                self.handshaken = True
                limits = self.server.limits
                self.deadline = self.accepted + limits.request_timeout
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
        self.task = self.loop.create_task(self._respond(line, error))

    def _resume_reading(self) -> None:
        self.loop.remove_writer(self.fd)
        self.loop.add_reader(self.fd, self._on_readable)
        self._on_readable()

    # -- responding -----------------------------------------------------------------------

    async def _respond(self, line: bytes | None, error: GeminiError | None) -> None:
        server = self.server
        limits = server.limits
        start = self.loop.time()
        self._set_deadline(start + limits.response_timeout)
        status: int | str = "-"
        size = 0
        outcome: Outcome | None = None
        try:
            if error is not None:
                certificate = peer_certificate_der(self.tls)
                outcome = Outcome(
                    Response(error.status, error.meta),
                    "-",
                    None if certificate is None else fingerprint(certificate),
                )
            else:
                assert line is not None
                outcome = await server.dispatcher.respond(
                    line, peer_certificate_der(self.tls), self.address, self.port
                )
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
            size = await self._send_response(header, response)
            server.stats.responses[response.status] += 1
            await self._close_notify()
        except asyncio.CancelledError:
            status = "timeout" if status == "-" else f"{status}+timeout"
            server.stats.dropped["response_timeout"] += 1
        except (SSL.Error, OSError):
            status = f"{status}+reset" if status != "-" else "reset"
            server.stats.dropped["reset_during_response"] += 1
        except Exception:
            log.exception("error while answering %s", self.address)
            status = "error"
        finally:
            if outcome is not None:
                await _close_body(outcome.response.body)
                server.access_log.record(
                    remote=f"{self.address}:{self.port}",
                    fingerprint=outcome.fingerprint,
                    target=outcome.target,
                    status=status,
                    size=size,
                    seconds=self.loop.time() - start,
                )
            self._close()

    async def _send_response(self, header: bytes, response: Response) -> int:
        """Send the header and, for 2x, the body; returns the body size sent."""
        limits = self.server.limits
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
        async for chunk in body:
            await self._send(chunk, limits)
            size += len(chunk)
        return size

    async def _send(self, data: bytes, limits: Limits) -> None:
        self._set_deadline(self.loop.time() + limits.write_timeout + len(data) / limits.write_rate)
        view = memoryview(data)
        tls = self.tls
        while view:
            try:
                sent = tls.send(view)
            except SSL.WantWriteError:
                await self._wait(writable=True)
            except SSL.WantReadError:
                await self._wait(writable=False)
            else:
                view = view[sent:]

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
        """Drop the connection without a response (timeouts, TLS failures, shutdown)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            return
        self.server.stats.dropped[reason] += 1
        self._close()

    def _close(self) -> None:
        if self.fd < 0:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
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
