"""Titan uploads as a handler sees them, and what the connection lends a request.

A Titan request's body is not read by the server on its own: the connection
hands over a :class:`Channel`, and the body is read from it only when a
handler iterates over ``request.upload`` (after validation, rate limits,
access rules and the handler's own size check have all passed).  A body that
is refused is never read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from ..gemini.escape import printable
from ..gemini.protocol import Status
from ..gemini.url import quote_path
from .response import Response

__all__ = [
    "DEFAULT_UPLOAD_TIMEOUT",
    "Channel",
    "Upload",
    "UploadIncomplete",
    "UploadStream",
    "check_upload",
    "no_uploads",
]

DEFAULT_UPLOAD_TIMEOUT = 10.0
"""Seconds an upload's body may take, beyond one second per ``write_rate`` bytes of it."""

CHUNK = 64 * 1024


class UploadIncomplete(Exception):
    """The client closed the connection (or it broke) before the whole body arrived."""

    def __init__(self, received: int, size: int) -> None:
        super().__init__(f"the upload ended after {received} of {size} bytes")
        self.received = received
        self.size = size


class UploadStream(Protocol):
    """The body of an upload, read from the connection under a deadline."""

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes; ``b""`` once ``size`` bytes were read.

        Raises :class:`UploadIncomplete` when the client stops short.
        """


class Channel(Protocol):
    """What the connection lends a request: its TLS facts, and its upload's body on demand.

    Both are computed only when asked (only gateways and uploads ask), so a
    static file's request pays nothing for them.
    """

    def tls_version(self) -> str:
        """The negotiated protocol (``TLSv1.3``)."""

    def tls_cipher(self) -> tuple[str, int]:
        """The negotiated cipher suite and its secret bits (``TLS_AES_256_GCM_SHA384``, 256)."""

    def upload_body(self, size: int, timeout: float) -> UploadStream:
        """The next ``size`` bytes of the connection, read within ``timeout`` seconds and a rate.

        The deadline is ``timeout`` plus one second per ``write_rate`` bytes
        (:class:`~hospes.policy.limits.Limits`), counted from the first read.
        """


@dataclass(slots=True)
class Upload:
    """A Titan upload: its size, MIME type and token as the client declared them, and its body.

    Iterate over it (``async for chunk in request.upload``) to read the body,
    at most ``size`` bytes in all; :meth:`read` reads it whole.  Nothing is
    read until then, so check ``size`` (and who is asking) first.  A body that
    ends short raises :class:`UploadIncomplete`.
    """

    size: int
    mime: str
    token: str | None
    channel: Channel | None = field(default=None, repr=False)
    timeout: float = DEFAULT_UPLOAD_TIMEOUT
    """Seconds the body may take beyond its size at ``write_rate`` (set by the handler)."""
    received: int = 0
    """Bytes of the body read so far."""
    _stream: UploadStream | None = field(default=None, repr=False)

    def _open(self) -> UploadStream:
        if self._stream is None:
            if self.channel is None:
                raise UploadIncomplete(0, self.size)
            self._stream = self.channel.upload_body(self.size, self.timeout)
        return self._stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The body in chunks of at most 64 KiB."""
        if self.size == 0:
            return
        stream = self._open()
        while self.received < self.size:
            chunk = await stream.read(min(CHUNK, self.size - self.received))
            if not chunk:
                raise UploadIncomplete(self.received, self.size)
            self.received += len(chunk)
            yield chunk

    async def read(self) -> bytes:
        """The whole body (hold it in memory only for small sizes)."""
        return b"".join([chunk async for chunk in self])


def no_uploads(path: str) -> Response:
    """The 59 of a Titan request for a resource that takes no uploads."""
    return Response(Status.BAD_REQUEST, f"no uploads are accepted at {printable(quote_path(path))}")


def check_upload(upload: Upload, max_size: int) -> Response | None:
    """The 59 of an upload larger than ``max_size`` bytes (before any byte of it is read)."""
    if upload.size <= max_size:
        return None
    return Response(
        Status.BAD_REQUEST,
        f"the upload is {upload.size} bytes; at most {max_size} bytes are accepted here",
    )
