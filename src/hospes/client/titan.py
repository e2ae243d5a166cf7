"""Titan uploads: ``titan://host/path;size=N;mime=TYPE;token=T`` and N bytes, under TOFU.

:class:`TitanClient` is a :class:`~hospes.client.fetch.Client` that also
uploads.  An upload goes through the same steps as a fetch: the server's key
is judged during the handshake (the same pins: a Titan server is its Gemini
server), the identity is chosen by scope, the verdict is recorded, and only
then is anything of the user's sent.  The identity sent is the one named, or
else the one whose scope contains the ``titan://`` URL, or the same host and
path under ``gemini://`` (an identity you browse a capsule with is the one you
write to it with).

A server that refuses an upload (59, 60, 61…) says so right after the
request line: before a body of more than one chunk, the client waits for
such an answer for twice the handshake's time (50 ms to 1 s), and it looks
again between two chunks; the rest of a refused body is not sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import BinaryIO
from urllib.parse import quote

from ..gemini.protocol import MAX_URL_BYTES, HeaderReader, ResponseHeaderError, parse_header
from ..gemini.url import URL, URLError, parse_url
from .connection import TLSStream
from .errors import (
    ClientFileError,
    FetchTimeout,
    InvalidRequest,
    MalformedResponse,
    TLSFailure,
)
from .fetch import Client, IdentityChoice, Trust
from .identities import Identity

__all__ = ["CHUNK", "TitanClient", "UploadResult", "titan_request_line", "upload_url"]

CHUNK = 64 * 1024
_LEAST_WAIT = 0.05
_MOST_WAIT = 1.0
"""Bounds of the wait for an early refusal before a large body (twice the handshake's time)."""
Progress = Callable[[int], None]
"""Called with the number of body bytes sent so far."""


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What the server answered to an upload."""

    url: URL
    """The ``titan://`` URL uploaded to (without parameters)."""
    status: int
    meta: str
    """As the server sent it: untrusted text, escape it before printing."""
    trust: Trust
    identity: Identity | None
    sent: int
    """Bytes of the body sent (fewer than the size when the server answered early)."""

    @property
    def location(self) -> URL | None:
        """For 3x, where the uploaded resource is (the meta resolved against the URL)."""
        if not 30 <= self.status <= 39:
            return None
        try:
            return replace(self.url, scheme="gemini").join(self.meta.strip())
        except URLError:
            return None


def upload_url(text: str | URL) -> URL:
    """Validate a ``titan://`` URL to upload to (a host, no userinfo, no parameters)."""
    try:
        url = text if isinstance(text, URL) else parse_url(text)
    except URLError as exc:
        raise InvalidRequest(f"invalid URL: {exc}") from None
    if url.scheme != "titan":
        raise InvalidRequest(f"not a titan: URL ({url.scheme}:)")
    if not url.host:
        raise InvalidRequest("the URL has no host")
    if url.userinfo is not None:
        raise InvalidRequest("a titan: URL cannot contain a user name")
    if ";" in url.path:
        raise InvalidRequest("give the size, type and token as options, not in the URL")
    return url.without_fragment()


def titan_request_line(url: URL, size: int, mime: str, token: str | None) -> bytes:
    """``titan://host/path;size=N;mime=TYPE[;token=T][?query]`` and CRLF."""
    parameters = f";size={size};mime={quote(mime, safe='/+=-._')}"
    if token is not None:
        parameters += f";token={quote(token, safe='')}"
    text = str(url.with_path(url.path or "/", None)) + parameters
    if url.query is not None:
        text += f"?{url.query}"
    data = text.encode("utf-8")
    if len(data) > MAX_URL_BYTES:
        raise InvalidRequest(f"the request line is longer than {MAX_URL_BYTES} bytes")
    return data + b"\r\n"


class TitanClient(Client):
    """A client that also uploads (:meth:`upload`), with the same pins and identities."""

    def identity_for(self, url: URL, identity: IdentityChoice) -> Identity | None:
        """The identity to send with an upload to ``url`` (see the module's docstring)."""
        if isinstance(identity, Identity):
            return identity
        if isinstance(identity, str):
            return self.identities.get(identity)
        if identity is False:
            return None
        return self.identities.for_url(url) or self.identities.for_url(
            replace(url, scheme="gemini")
        )

    async def upload(
        self,
        url: str | URL,
        body: BinaryIO,
        size: int,
        *,
        mime: str = "text/gemini",
        token: str | None = None,
        identity: IdentityChoice = None,
        accept_key: str | None = None,
        progress: Progress | None = None,
    ) -> UploadResult:
        """Upload ``size`` bytes read from ``body`` to ``url``; the server's answer.

        Redirects are not followed (a 30 names where the upload now is: see
        :attr:`UploadResult.location`).  Raises
        :class:`~hospes.client.errors.ClientError` (:class:`ClientFileError`
        when ``body`` holds fewer than ``size`` bytes).
        """
        target = upload_url(url)
        line = titan_request_line(target, size, mime, token)
        chosen = await asyncio.to_thread(self.identity_for, target, identity)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        started = loop.time()
        stream, trust = await self._connect(target, chosen, accept_key, deadline)
        handshake = loop.time() - started
        try:
            await stream.send_all(line, deadline)
            early = None
            if size > CHUNK:
                # A refusal comes one round trip after the request line; a larger body
                # would fill the buffers, the server would close, and its answer be lost.
                wait = min(max(2 * handshake, _LEAST_WAIT), _MOST_WAIT, self.timeout)
                early = await _early_answer(stream, loop.time() + wait, wait=True)
            sent = 0
            if early is None:
                sent, early = await self._send_body(stream, body, size, progress)
            status, meta = early or await _read_header(stream, loop.time() + self.timeout)
        finally:
            stream.close()
        return UploadResult(target, status, meta, trust, chosen, sent)

    async def _send_body(
        self, stream: TLSStream, body: BinaryIO, size: int, progress: Progress | None
    ) -> tuple[int, tuple[int, str] | None]:
        """Send the body; stop at an early answer.  (bytes sent, the answer if it came early)."""
        loop = asyncio.get_running_loop()
        sent = 0
        while sent < size:
            answer = await _early_answer(stream, loop.time() + self.timeout)
            if answer is not None:
                return sent, answer
            chunk = await asyncio.to_thread(body.read, min(CHUNK, size - sent))
            if not chunk:
                raise ClientFileError(
                    f"the file ended after {sent} of {size} bytes (did it change?); "
                    "the server keeps nothing of an incomplete upload"
                )
            try:
                await stream.send_all(chunk, loop.time() + self.timeout)
            except TLSFailure:
                # The server may have answered and closed: its answer says why.
                answer = await _early_answer(stream, loop.time() + self.timeout, wait=True)
                if answer is None:
                    raise TLSFailure(
                        f"the server closed the connection after {sent} of {size} bytes "
                        "(it may have refused the upload without waiting for it)"
                    ) from None
                return sent, answer
            sent += len(chunk)
            if progress is not None:
                progress(sent)
        return sent, None


async def _early_answer(
    stream: TLSStream, deadline: float, *, wait: bool = False
) -> tuple[int, str] | None:
    """The server's header if it has answered already (``wait``: until the deadline)."""
    try:
        first = await stream.recv(
            deadline if wait else asyncio.get_running_loop().time(), "an early answer"
        )
    except FetchTimeout:
        return None
    except MalformedResponse:
        if wait:
            return None
        raise
    if not first:
        return None
    return await _read_header(stream, deadline, first)


async def _read_header(stream: TLSStream, deadline: float, first: bytes = b"") -> tuple[int, str]:
    reader = HeaderReader()
    data = first
    while True:
        if not data:
            data = await stream.recv(deadline, "the response header")
            if not data:
                raise MalformedResponse("the server closed the connection without a response")
        try:
            complete = reader.feed(data)
            if complete is not None:
                return parse_header(complete[0])
        except ResponseHeaderError as exc:
            raise MalformedResponse(f"malformed response header: {exc}") from None
        data = b""
