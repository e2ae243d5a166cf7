"""One TLS connection to a server: a non-blocking socket, pyOpenSSL, and the event loop's readiness.

OpenSSL reads and writes the socket itself; whenever it would block, the
coroutine waits for the socket to become readable or writable with
``loop.add_reader``/``add_writer`` (as :mod:`hospes.server.connection` does), bounded by
a deadline.  Every error becomes a :class:`~hospes.client.errors.ClientError`
that says which step failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket

from cryptography import x509
from OpenSSL import SSL

from ..selfsigned import PrivateKey
from .errors import ConnectError, FetchTimeout, MalformedResponse, TLSFailure
from .tls import PeerCheck

__all__ = ["TLSStream"]

_READ_SIZE = 65536


def _reasons(exc: SSL.Error) -> str:
    """OpenSSL's error queue as text: ``wrong version number``, ``tlsv1 alert ...``."""
    details = exc.args[0] if exc.args else None
    if isinstance(details, list):
        reasons = [str(item[2]) for item in details if isinstance(item, tuple) and len(item) == 3]
        if reasons:
            return ", ".join(reasons)
    return str(exc) or type(exc).__name__


def _is_unexpected_eof(exc: SSL.Error) -> bool:
    """The peer closed the TCP connection without a TLS close_notify."""
    if isinstance(exc, SSL.SysCallError):
        return exc.args[:1] in ((-1,), (0,))
    return "unexpected eof" in _reasons(exc).lower()


class TLSStream:
    """A connected, handshaken TLS stream.  Create it with :meth:`open`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: SSL.Connection
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._tls = tls
        self._eof = False
        self.clean_close: bool | None = None
        """After the end of the stream: True if it ended with close_notify, False if not."""

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        context: SSL.Context,
        check: PeerCheck,
        *,
        identity: tuple[x509.Certificate, PrivateKey] | None,
        deadline: float,
    ) -> TLSStream:
        """Connect to ``host:port`` and complete the handshake, judging the server with ``check``.

        ``identity`` is ``(certificate, private key)`` to present if the server
        asks.  Raises the check's own failure when it refused the server.
        """
        loop = asyncio.get_running_loop()
        sock = await _connect(loop, host, port, deadline)
        try:
            tls = SSL.Connection(context, sock)
            tls.set_connect_state()
            if not _is_address(host):
                tls.set_tlsext_host_name(host.encode("ascii"))
            tls.set_verify(SSL.VERIFY_PEER, check.callback)
            if identity is not None:
                certificate, key = identity
                try:
                    tls.use_certificate(certificate)
                    tls.use_privatekey(key)
                except SSL.Error as exc:  # checked before connecting: only a bug gets here
                    raise TLSFailure(
                        f"the client certificate cannot be used: {_reasons(exc)}"
                    ) from None
            stream = cls(loop, sock, tls)
            await stream._handshake(check, host, port, deadline)
        except BaseException:
            sock.close()
            raise
        return stream

    async def _handshake(self, check: PeerCheck, host: str, port: int, deadline: float) -> None:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        while True:
            try:
                self._tls.do_handshake()
                return
            except SSL.WantReadError:
                await self._wait(False, deadline, "the TLS handshake")
            except SSL.WantWriteError:
                await self._wait(True, deadline, "the TLS handshake")
            except SSL.Error as exc:
                if check.failure is not None:
                    raise check.failure from None
                if _is_unexpected_eof(exc):
                    raise TLSFailure(
                        f"{address} closed the connection during the TLS handshake"
                    ) from None
                if isinstance(exc, SSL.SysCallError):
                    raise TLSFailure(
                        f"TLS handshake with {address} failed: {exc.args[-1]}"
                    ) from None
                raise TLSFailure(f"TLS handshake with {address} failed: {_reasons(exc)}") from None

    async def _wait(self, writable: bool, deadline: float, what: str) -> None:
        loop = self._loop
        waiter: asyncio.Future[None] = loop.create_future()
        register = loop.add_writer if writable else loop.add_reader
        unregister = loop.remove_writer if writable else loop.remove_reader
        register(self._fd, _wake, waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except TimeoutError:
            raise FetchTimeout(f"timed out waiting for {what}") from None
        finally:
            unregister(self._fd)

    async def send_all(self, data: bytes, deadline: float) -> None:
        """Send every byte of ``data``."""
        view = memoryview(data)
        while view:
            try:
                sent = self._tls.send(view)
            except SSL.WantWriteError:
                await self._wait(True, deadline, "the server to accept the request")
            except SSL.WantReadError:
                await self._wait(False, deadline, "the server to accept the request")
            except SSL.Error as exc:
                raise TLSFailure(f"cannot send the request: {_describe(exc)}") from None
            else:
                view = view[sent:]

    async def recv(self, deadline: float, what: str = "the response") -> bytes:
        """The next bytes from the server; ``b""`` at the end (see :attr:`clean_close`)."""
        if self._eof:
            return b""
        while True:
            try:
                return self._tls.recv(_READ_SIZE)
            except SSL.WantReadError:
                await self._wait(False, deadline, what)
            except SSL.WantWriteError:
                await self._wait(True, deadline, what)
            except SSL.ZeroReturnError:
                self._eof, self.clean_close = True, True
                return b""
            except SSL.Error as exc:
                if _is_unexpected_eof(exc):
                    self._eof, self.clean_close = True, False
                    return b""
                raise MalformedResponse(
                    f"the connection broke during {what}: {_describe(exc)}"
                ) from None

    def close(self) -> None:
        """Send close_notify if the socket takes it right away, then close the socket."""
        if self._fd < 0:
            return
        with contextlib.suppress(SSL.Error, OSError):
            self._tls.shutdown()
        self._sock.close()
        self._fd = -1


def _describe(exc: SSL.Error) -> str:
    if isinstance(exc, SSL.SysCallError) and len(exc.args) == 2:
        return str(exc.args[1])
    return _reasons(exc)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _connect(
    loop: asyncio.AbstractEventLoop, host: str, port: int, deadline: float
) -> socket.socket:
    """A connected non-blocking socket to the first address of ``host`` that answers."""
    try:
        async with asyncio.timeout_at(deadline):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise FetchTimeout(f"timed out resolving {host}") from None
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
    failures: list[str] = []
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            async with asyncio.timeout_at(deadline):
                await loop.sock_connect(sock, address)
        except TimeoutError:
            sock.close()
            raise FetchTimeout(f"timed out connecting to {host} port {port}") from None
        except OSError as exc:
            sock.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            failures.append(f"{address[0]}: {reason}")
            continue
        except BaseException:
            sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise ConnectError(f"cannot connect to {host} port {port} ({'; '.join(failures)})")
