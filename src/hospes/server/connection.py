"""One client connection, from accept to close: handshake, request line, response, close_notify.

This is the hot path (Gemini opens one TLS connection per request), so it is
written against raw non-blocking sockets and readiness callbacks rather than
asyncio streams: OpenSSL reads and writes the socket itself, the handshake and
the request line are driven by one reader callback, and only the response runs
as a task (handlers may be coroutines).

A connection has one deadline, moved by phase: the handshake and the request
line are timed from accept (a trickle of bytes does not extend them), the
handler has its own timeout, a Titan upload's body gets a budget proportional
to its size (read only when a handler asks for it, see
:meth:`Connection.upload_body`), and writes get a budget proportional to the
response's size with a floor.  The connection only sets its deadline; its
server checks every connection's deadline in a periodic sweep.

A connection tells its server what happens through :class:`Owner`, and
nothing else of the server is within its reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import termios
from dataclasses import dataclass
from typing import Protocol

from OpenSSL import SSL

from ..app.dispatch import Dispatcher, Outcome
from ..app.response import BodyAborted, Response
from ..app.upload import UploadIncomplete
from ..gemini.fingerprint import fingerprint
from ..gemini.protocol import GeminiError, RequestReader
from ..policy.clock import Clock
from ..policy.limits import Limits
from .accesslog import AccessLog
from .admission import AddressKey
from .refusals import RecentRefusals
from .stats import Stats
from .tls import ServerContexts, peer_certificate_der, server_name

__all__ = ["Connection", "Owner", "Setup"]

log = logging.getLogger("hospes.server")

_READ_SIZE = 2048
_NOTHING = bytes(4)
"""FIONREAD's answer for a socket with no unread bytes."""


@dataclass(frozen=True, slots=True)
class Setup:
    """What a connection is served with, fixed at accept: a reload swaps in a new one."""

    dispatcher: Dispatcher
    contexts: ServerContexts
    limits: Limits


class Owner(Protocol):
    """What a connection needs of the server that accepted it.

    A clock, counters, the last refusals, an access log, and three things to be told.
    """

    clock: Clock
    stats: Stats
    refusals: RecentRefusals
    access_log: AccessLog

    def request_received(self, connection: Connection) -> None:
        """The request line is in: ``connection`` no longer waits (nor can be evicted)."""

    def slowed_down(self, connection: Connection, wait: float) -> None:
        """The rate limits answered ``connection`` with 44, told to wait ``wait`` seconds."""

    def closed(self, connection: Connection) -> None:
        """``connection``'s socket is closed: forget it."""


class Connection:
    """One client connection, from accept to close."""

    __slots__ = (
        "accepted",
        "address",
        "certificate",
        "deadline",
        "fd",
        "handshaken",
        "key",
        "loop",
        "owner",
        "phase",
        "port",
        "reader",
        "reason",
        "setup",
        "sock",
        "task",
        "tls",
        "write_budget",
    )

    def __init__(  # noqa: PLR0917 - built in one place, on the hot path
        self,
        owner: Owner,
        setup: Setup,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        address: str,
        port: int,
        key: AddressKey | None,
    ) -> None:
        self.owner = owner
        self.setup = setup
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.port = port
        self.key = key
        """The address group (None: a trusted address)."""
        self.tls = setup.contexts.connection(sock)
        self.reader = RequestReader()
        self.handshaken = False
        self.certificate: bytes | None = None
        """The client certificate's DER, once the handshake is done (None: it sent none)."""
        self.task: asyncio.Task[None] | None = None
        self.phase = "handshake"
        """What the deadline is for: handshake, request, response or write."""
        self.reason = ""
        self.write_budget = 0.0
        self.accepted = owner.clock()
        self.deadline = self.accepted + setup.limits.handshake_timeout

    def start(self) -> None:
        """Start reading; the connection runs by itself from here."""
        # No handshake attempt before the ClientHello is there: OpenSSL would allocate its
        # buffers at once (29 kB), and an idle connection costs 18 kB instead of 47 kB.
        self.loop.add_reader(self.fd, self._on_readable)

    # -- reading the request --------------------------------------------------------------

    def _on_readable(self) -> None:
        tls = self.tls
        line: bytes | None = None
        error: GeminiError | None = None
        try:
            if not self.handshaken:
                tls.do_handshake()
                self.handshaken = True
                # Done here, not at the request: a client that never asks counts too.
                self.certificate = peer_certificate_der(tls)
                self.setup.contexts.sessions.handshake(tls, self.certificate)
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
        self.owner.request_received(self)
        self.phase = "response"
        self.task = self.loop.create_task(self._respond(line, error))

    def _resume_reading(self) -> None:
        self.loop.remove_writer(self.fd)
        self.loop.add_reader(self.fd, self._on_readable)
        self._on_readable()

    # -- responding -----------------------------------------------------------------------

    async def _respond(self, line: bytes | None, error: GeminiError | None) -> None:
        owner = self.owner
        clock = owner.clock
        limits = self.setup.limits
        start = clock()
        self.deadline = start + limits.response_timeout
        status: int | str = "-"
        size = 0
        outcome: Outcome | None = None
        certificate = self.certificate
        try:
            dispatcher = self.setup.dispatcher
            if error is not None:
                outcome = dispatcher.reject(error, "-", certificate, address_key=self.key)
            else:
                assert line is not None
                outcome = await dispatcher.respond(
                    line,
                    certificate,
                    self.address,
                    self.port,
                    address_key=self.key,
                    server_name=server_name(self.tls),
                    channel=self,
                )
            if outcome.slowed:
                owner.slowed_down(self, outcome.slowed)
            response = outcome.response
            header = response.header()  # valid by construction: Response checks itself
            status = response.status
            if status == 44 or 60 <= status <= 69:  # refused: kept for the admin's overview
                owner.refusals.add(
                    self.address,
                    self.key,
                    limits.ipv6_prefix,
                    outcome.fingerprint,
                    status,
                    response.meta,
                )
            self.write_budget = limits.write_timeout
            size = await self._send_response(header, response, limits)
            owner.stats.responses[response.status] += 1
            await self._close_notify()
        except asyncio.CancelledError:
            reason = self.reason or "cancelled"
            status = reason if status == "-" else f"{status}+{reason}"
            owner.stats.dropped[reason] += 1
        except (SSL.Error, OSError):
            status = f"{status}+reset" if status != "-" else "reset"
            owner.stats.dropped["reset_during_response"] += 1
        except BodyAborted as exc:
            log.warning("response to %s cut short: %s", self.address, exc)
            status = f"{status}+aborted"
            owner.stats.dropped["body_aborted"] += 1
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
                target = "-" if line is None else line.decode("utf-8", "replace")
            owner.access_log.record(
                remote=f"{self.address}:{self.port}",
                fingerprint=who,
                target=target,
                status=status,
                size=size,
                seconds=clock() - start,
            )
            self._close()

    # -- what the connection lends a request (hospes.app.upload.Channel) ---------------------

    def tls_version(self) -> str:
        """The negotiated protocol version (``TLSv1.3``)."""
        return self.tls.get_protocol_version_name()

    def tls_cipher(self) -> tuple[str, int]:
        """The negotiated cipher suite and its secret bits."""
        return self.tls.get_cipher_name() or "", self.tls.get_cipher_bits() or 0

    def upload_body(self, size: int, timeout: float) -> _UploadBody:
        """The ``size`` bytes after the request line, read under their own deadline.

        Nothing is read before the handler asks; the bytes that arrived with
        the request line come first.
        """
        return _UploadBody(self, size, timeout)

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
        clock = self.owner.clock
        while True:
            # The handler has response_timeout to produce each chunk of a streamed body.
            self.phase = "response"
            self.deadline = clock() + limits.response_timeout
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return size
            await self._send(chunk, limits)
            size += len(chunk)

    async def _send(self, data: bytes, limits: Limits) -> None:
        """Send ``data``; the whole response's writes share one budget (see Limits.write_rate)."""
        clock = self.owner.clock
        self.phase = "write"
        self.write_budget += len(data) / limits.write_rate
        began = clock()
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
            self.write_budget -= clock() - began

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
        self.owner.stats.dropped[reason] += 1
        self._close()

    def _close(self) -> None:
        if self.fd < 0:
            return
        loop = self.loop
        loop.remove_reader(self.fd)
        loop.remove_writer(self.fd)
        unread = bytearray(4)
        try:
            # Unread bytes (anything after the CRLF) would turn close() into a reset
            # that can destroy the response in the client's buffers.  FIONREAD tells
            # whether there are any, at half the cost of a recv() failing with
            # BlockingIOError (the usual case: nothing to read).
            for _ in range(16):
                fcntl.ioctl(self.fd, termios.FIONREAD, unread)
                if unread == _NOTHING or not self.sock.recv(65536):
                    break
        except OSError:
            pass
        self.sock.close()
        self.fd = -1
        self.owner.closed(self)


class _UploadBody:
    """An upload's body, read from the TLS connection (see :class:`hospes.app.upload.UploadStream`).

    From its first read, the connection is in the ``upload`` phase: the whole
    body must arrive within ``timeout`` seconds plus one second per
    ``write_rate`` bytes (the rate a client must also read responses at), or
    the server's sweep drops the connection, which cancels the handler.  Once
    the body is complete, the handler's own deadline applies again.
    """

    __slots__ = ("_connection", "_remaining", "_started", "_timeout", "size")

    def __init__(self, connection: Connection, size: int, timeout: float) -> None:
        self._connection = connection
        self.size = size
        self._remaining = size
        self._timeout = timeout
        self._started = False

    def _start(self) -> None:
        connection = self._connection
        limits = connection.setup.limits
        connection.phase = "upload"
        connection.deadline = (
            connection.owner.clock() + self._timeout + self.size / limits.write_rate
        )
        self._started = True

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body; ``b""`` once it is complete."""
        if self._remaining <= 0:
            return b""
        if not self._started:
            self._start()
        connection = self._connection
        reader = connection.reader
        want = min(limit, self._remaining)
        if reader.rest:
            data, reader.rest = reader.rest[:want], reader.rest[want:]
        else:
            data = await self._receive(want)
        self._remaining -= len(data)
        if self._remaining == 0:
            connection.phase = "response"
            connection.deadline = (
                connection.owner.clock() + connection.setup.limits.response_timeout
            )
        return data

    async def _receive(self, want: int) -> bytes:
        connection = self._connection
        received = self.size - self._remaining
        while True:
            try:
                data = connection.tls.recv(want)
            except SSL.WantReadError:
                await connection._wait(writable=False)
                continue
            except SSL.WantWriteError:
                await connection._wait(writable=True)
                continue
            except (SSL.ZeroReturnError, SSL.Error, OSError):
                raise UploadIncomplete(received, self.size) from None
            if not data:
                raise UploadIncomplete(received, self.size)
            return data


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _close_body(body: object) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
