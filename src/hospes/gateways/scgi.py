"""SCGI: a long-running application answers the requests under a URL prefix.

Each request opens one connection to the application (TCP ``host:port`` or
a Unix socket ``unix:/path``) and sends the SCGI request: a netstring of
the CGI variables (``CONTENT_LENGTH`` first, ``SCGI=1``; the same variables a
CGI script gets, :func:`~hospes.gateways.environment.cgi_environment`), then
the body: nothing for Gemini, the upload for Titan where the mount takes
uploads.  The application's answer is a Gemini header line and, for 2x, the
body, streamed to the client as it comes.

Deadlines: ``connect_timeout`` to connect, ``timeout`` for the header and
then for each chunk of the body.  An application that cannot be reached
answers ``43`` and is logged once a minute, not once a request; one that
does not answer in time answers ``43`` too; one whose header is not a valid
Gemini header answers ``42``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..app.request import Request
from ..app.response import BodyAborted, Response
from ..app.upload import UploadIncomplete, check_upload, no_uploads
from ..gemini.protocol import Status
from ..policy.clock import Clock
from .environment import SAFE_PATH, cgi_environment, resolve_account
from .reply import GatewayError, gateway_failure, read_gateway_header

__all__ = ["SCGIApplication", "SCGIMount", "netstring", "parse_scgi_address"]

log = logging.getLogger("hospes.gateways")

_CHUNK = 64 * 1024
_LOG_EVERY = 60.0
"""Seconds between two log lines about the same unreachable application."""


@dataclass(frozen=True, slots=True)
class SCGIMount:
    """An ``[[scgi]]`` table: the application at ``address`` answers the requests under ``path``."""

    path: str
    address: str
    """``host:port``, ``[v6]:port`` or ``unix:/absolute/path``."""
    connect_timeout: float = 5.0
    timeout: float = 30.0
    max_upload: int | None = None
    """Titan uploads of at most this many bytes are passed on (None: uploads are refused)."""
    env: Mapping[str, str] = field(default_factory=dict)


def parse_scgi_address(text: str) -> tuple[str, int] | Path:
    """``host:port`` as (host, port), ``unix:/path`` as a path; :class:`ValueError` otherwise."""
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"a Unix socket address is unix:/absolute/path, got {text!r}")
        return Path(path)
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"expected 'host:port' (e.g. 127.0.0.1:4000) or 'unix:/path/to.sock', got {text!r}"
        )
    return host, int(port)


def netstring(variables: Mapping[str, str]) -> bytes:
    """The SCGI header: ``len:name\\0value\\0...,`` (``CONTENT_LENGTH`` must come first).

    Raises :class:`ValueError` for a NUL in a name or a value: it would end
    that string early and make the rest read as variables of its own.
    """
    for name, value in variables.items():
        if "\0" in name or "\0" in value:
            raise ValueError(f"SCGI variable {name!r} contains a NUL character")
    payload = b"".join(
        name.encode("utf-8") + b"\0" + value.encode("utf-8") + b"\0"
        for name, value in variables.items()
    )
    return b"%d:%s," % (len(payload), payload)


class SCGIApplication:
    """A handler passing requests to an SCGI application (mount it at a URL prefix)."""

    uses_accounts = False
    """The account is looked up only for requests that reach the application."""

    def __init__(
        self,
        address: str,
        *,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        max_upload: int | None = None,
        env: Mapping[str, str] | None = None,
        software: str = "hospes",
        clock: Clock = time.monotonic,
    ) -> None:
        self.address = address
        self.target = parse_scgi_address(address)
        if connect_timeout <= 0 or timeout <= 0:
            raise ValueError("connect_timeout and timeout must be positive")
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_upload = max_upload
        for name, value in (env or {}).items():
            if "\0" in name or "\0" in value:
                raise ValueError(f"SCGI variable {name!r} contains a NUL character")
        self.base = {"PATH": SAFE_PATH, **(env or {}), "SERVER_SOFTWARE": software}
        self.clock = clock
        self._logged_at = -math.inf
        self._unlogged = 0

    @classmethod
    def from_mount(cls, mount: SCGIMount, software: str, clock: Clock) -> SCGIApplication:
        """The handler of an ``[[scgi]]`` table."""
        return cls(
            mount.address,
            connect_timeout=mount.connect_timeout,
            timeout=mount.timeout,
            max_upload=mount.max_upload,
            env=mount.env,
            software=software,
            clock=clock,
        )

    @property
    def accepts_uploads(self) -> bool:
        """Whether Titan uploads are passed on to the application."""
        return self.max_upload is not None

    async def __call__(self, request: Request) -> Response:
        """Pass the request on; answer with the application's response."""
        upload = request.upload
        if upload is not None:
            if self.max_upload is None:
                return no_uploads(request.path)
            refused = check_upload(upload, self.max_upload)
            if refused is not None:
                return refused
        await resolve_account(request)
        variables = cgi_environment(
            request, self.base, script_name=request.base, path_info=request.relative_path
        )
        length = variables.pop("CONTENT_LENGTH", "0")
        try:
            header = netstring({"CONTENT_LENGTH": length, "SCGI": "1", **variables})
        except ValueError as exc:  # never sent: the application would read other variables
            log.error("request not passed to SCGI application %s: %s", self.address, exc)
            return gateway_failure("the request cannot be passed to the application")
        try:
            reader, writer = await self._connect()
        except (OSError, TimeoutError) as exc:
            self._unreachable(exc)
            return Response(Status.PROXY_ERROR, "the application is unavailable; try again later")
        try:
            writer.write(header)
            if upload is not None:
                async for chunk in upload:
                    writer.write(chunk)
                    await writer.drain()
            await writer.drain()
            async with asyncio.timeout(self.timeout):
                status, meta, rest = await read_gateway_header(reader.read)
        except UploadIncomplete as exc:
            await _close(writer)
            return Response(Status.BAD_REQUEST, str(exc))
        except TimeoutError:
            await _close(writer)
            log.warning(
                "SCGI application %s did not answer within %g s", self.address, self.timeout
            )
            return Response(Status.PROXY_ERROR, "the application did not answer in time")
        except GatewayError as exc:
            await _close(writer)
            log.warning("SCGI application %s failed: %s", self.address, exc)
            return gateway_failure("the application's response is not a valid Gemini response")
        except OSError as exc:
            await _close(writer)
            log.warning("SCGI application %s: connection broken: %s", self.address, exc)
            return Response(Status.PROXY_ERROR, "the application closed the connection")
        except BaseException:
            await _close(writer)
            raise
        if status // 10 != 2:
            await _close(writer)
            return Response(status, meta)
        return Response(status, meta, _ApplicationBody(self, reader, writer, rest))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(self.connect_timeout):
            if isinstance(self.target, Path):
                return await asyncio.open_unix_connection(self.target)
            host, port = self.target
            return await asyncio.open_connection(host, port)

    def _unreachable(self, error: BaseException) -> None:
        """Log that the application cannot be reached: once a minute, with what was not logged."""
        now = self.clock()
        if now - self._logged_at < _LOG_EVERY:
            self._unlogged += 1
            return
        reason = "timed out" if isinstance(error, TimeoutError) else str(error)
        more = f" ({self._unlogged} more requests failed since)" if self._unlogged else ""
        log.error("SCGI application %s cannot be reached: %s%s", self.address, reason, more)
        self._logged_at = now
        self._unlogged = 0


class _ApplicationBody:
    """A 2x application's output after its header, streamed; each chunk within the timeout."""

    __slots__ = ("_application", "_first", "_reader", "_writer")

    def __init__(
        self,
        application: SCGIApplication,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first: bytes,
    ) -> None:
        self._application = application
        self._reader = reader
        self._writer = writer
        self._first = first

    def __aiter__(self) -> _ApplicationBody:
        return self

    async def __anext__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        try:
            async with asyncio.timeout(self._application.timeout):
                data = await self._reader.read(_CHUNK)
        except TimeoutError:
            await _close(self._writer)
            raise BodyAborted(
                f"SCGI application {self._application.address} sent nothing for "
                f"{self._application.timeout:g} s"
            ) from None
        except OSError as exc:
            await _close(self._writer)
            raise BodyAborted(f"SCGI application {self._application.address}: {exc}") from None
        if not data:
            await _close(self._writer)
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        """Close the connection to the application."""
        await _close(self._writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        return
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
