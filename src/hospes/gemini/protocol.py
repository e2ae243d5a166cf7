"""The Gemini protocol core, sans-I/O: request lines in, response headers out.

Nothing here touches a socket.  A server feeds received bytes to a
:class:`RequestReader`, validates the line with :func:`parse_request` and
:func:`check_target`, and frames its answer with :func:`format_header`.  A
client does the mirror image with :class:`HeaderReader` and
:func:`parse_header`.  Every violation raises :class:`GeminiError` carrying the
status and meta the peer should be told.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import IntEnum

from .url import DEFAULT_PORT, URL, URLError, parse_url, percent_decode

__all__ = [
    "DEFAULT_PORT",
    "MAX_META_BYTES",
    "MAX_URL_BYTES",
    "GeminiError",
    "HeaderReader",
    "RequestReader",
    "ResponseHeaderError",
    "Status",
    "check_target",
    "decode_path",
    "format_header",
    "parse_header",
    "parse_request",
]

MAX_URL_BYTES = 1024
MAX_META_BYTES = 1024
_CRLF = b"\r\n"
_BOM = b"\xef\xbb\xbf"


class Status(IntEnum):
    """The status codes of the Gemini specification."""

    INPUT = 10
    SENSITIVE_INPUT = 11
    SUCCESS = 20
    REDIRECT_TEMPORARY = 30
    REDIRECT_PERMANENT = 31
    TEMPORARY_FAILURE = 40
    SERVER_UNAVAILABLE = 41
    CGI_ERROR = 42
    PROXY_ERROR = 43
    SLOW_DOWN = 44
    PERMANENT_FAILURE = 50
    NOT_FOUND = 51
    GONE = 52
    PROXY_REQUEST_REFUSED = 53
    BAD_REQUEST = 59
    CERTIFICATE_REQUIRED = 60
    CERTIFICATE_NOT_AUTHORISED = 61
    CERTIFICATE_NOT_VALID = 62


class GeminiError(Exception):
    """A request that must be answered with an error status instead of a resource."""

    def __init__(self, status: int, meta: str) -> None:
        super().__init__(f"{status} {meta}")
        self.status = status
        self.meta = meta


def _bad_request(reason: str) -> GeminiError:
    return GeminiError(Status.BAD_REQUEST, reason)


class RequestReader:
    """Accumulates received bytes until the request line is complete.

    :meth:`feed` returns the line (without CRLF) once it is complete and
    ``None`` while more bytes are needed; it raises :class:`GeminiError` (59)
    as soon as the line can no longer be valid, so a server never buffers more
    than 1026 bytes of a request.  Bytes after the CRLF are ignored.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> bytes | None:
        """Add received bytes; the complete line once it arrived, else None."""
        buffer = self._buffer + data if self._buffer else data
        end = buffer.find(b"\n", 0, MAX_URL_BYTES + 2)
        if end == -1:
            if len(buffer) > MAX_URL_BYTES + 1 or (
                len(buffer) == MAX_URL_BYTES + 1 and buffer[-1:] != b"\r"
            ):
                raise _bad_request(f"request is longer than {MAX_URL_BYTES} bytes")
            self._buffer = buffer
            return None
        if end == 0 or buffer[end - 1] != 13:
            raise _bad_request("request line must end with CRLF")
        self._buffer = b""
        return buffer[: end - 1]

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete line are held."""
        return len(self._buffer)


def parse_request(line: bytes) -> URL:
    """Validate a request line (without CRLF) and return its URL.

    Raises :class:`GeminiError` with 59 for anything that is not an absolute
    URL a Gemini server may answer, and 53 for a URL of another scheme.
    """
    if not line:
        raise _bad_request("empty request")
    if len(line) > MAX_URL_BYTES:
        raise _bad_request(f"request is longer than {MAX_URL_BYTES} bytes")
    if line.startswith(_BOM):
        raise _bad_request("request starts with a byte-order mark")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_request("request is not valid UTF-8") from None
    try:
        url = parse_url(text)
    except URLError as exc:
        raise _bad_request(str(exc)) from None
    if url.scheme != "gemini":
        raise GeminiError(Status.PROXY_REQUEST_REFUSED, f"this server does not proxy {url.scheme}:")
    if not url.host:
        raise _bad_request("URL has no host")
    if url.userinfo is not None:
        raise _bad_request("URL must not contain userinfo")
    if url.fragment is not None:
        raise _bad_request("URL must not contain a fragment")
    return url


def check_target(url: URL, hostnames: Collection[str], ports: Collection[int]) -> None:
    """Refuse (53) a request for a host or port this server does not answer for.

    ``hostnames`` must already be normalised as :func:`hospes.gemini.url.parse_url`
    normalises hosts (lower case, IDNA, no trailing dot).
    """
    if url.host not in hostnames:
        raise GeminiError(Status.PROXY_REQUEST_REFUSED, f"this server does not serve {url.host}")
    if url.effective_port not in ports:
        raise GeminiError(
            Status.PROXY_REQUEST_REFUSED,
            f"this server does not serve port {url.effective_port}",
        )


def decode_path(url: URL) -> str:
    """The decoded path of a request URL, exactly as the server routes it.

    Raises :class:`GeminiError` (59) for invalid UTF-8 and for encoded NUL or
    ``/`` (which would make the decoded path ambiguous).
    """
    raw = url.path
    if "%" in raw:
        lowered = raw.lower()
        if "%00" in lowered:
            raise _bad_request("encoded NUL in the path")
        if "%2f" in lowered:
            raise _bad_request("encoded '/' in the path")
    try:
        return percent_decode(raw) or "/"
    except URLError as exc:
        raise _bad_request(str(exc)) from None


def format_header(status: int, meta: str) -> bytes:
    """Frame a response header ``<status> <meta>\\r\\n``.

    Raises :class:`ValueError` for a status outside 10-69 or a meta that is
    longer than 1024 bytes or contains CR or LF: these are bugs of the caller,
    not of the peer.
    """
    if not 10 <= status <= 69:
        raise ValueError(f"invalid Gemini status {status!r}")
    encoded = meta.encode("utf-8")
    if len(encoded) > MAX_META_BYTES:
        raise ValueError(f"meta is longer than {MAX_META_BYTES} bytes")
    if b"\r" in encoded or b"\n" in encoded:
        raise ValueError("meta must not contain CR or LF")
    return b"%d %s\r\n" % (status, encoded)


class ResponseHeaderError(ValueError):
    """A server sent something that is not a valid Gemini response header."""


class HeaderReader:
    """Accumulates received bytes until the response header is complete (client side).

    :meth:`feed` returns ``(header_line, rest_of_data)`` once the CRLF arrived,
    else ``None``; a header that cannot fit the specification's limits raises
    :class:`ResponseHeaderError` without waiting for more bytes.
    """

    __slots__ = ("_buffer",)
    _LIMIT = 3 + MAX_META_BYTES + 2

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Add received bytes; ``(header, rest)`` once the header is complete, else None."""
        buffer = self._buffer + data
        end = buffer.find(_CRLF, 0, self._LIMIT)
        if end == -1:
            if len(buffer) >= self._LIMIT:
                raise ResponseHeaderError(
                    f"response header is longer than {self._LIMIT - 2} bytes (no CRLF)"
                )
            self._buffer = buffer
            return None
        self._buffer = b""
        return buffer[:end], buffer[end + 2 :]

    @property
    def buffered(self) -> bytes:
        """Bytes of an incomplete header received so far."""
        return self._buffer


def parse_header(line: bytes) -> tuple[int, str]:
    """Parse a response header line (without CRLF) into ``(status, meta)``.

    Accepts a missing space when the meta is empty.  Raises
    :class:`ResponseHeaderError` for anything else that is not
    ``<two digits><space><meta of at most 1024 bytes>``.
    """
    if len(line) < 2 or not line[:2].isdigit() or not 0x31 <= line[0] <= 0x36:
        raise ResponseHeaderError(f"invalid status in response header {_preview(line)}")
    status = int(line[:2])
    rest = line[2:]
    if rest and rest[:1] != b" ":
        raise ResponseHeaderError(f"no space after the status in {_preview(line)}")
    meta_bytes = rest[1:]
    if len(meta_bytes) > MAX_META_BYTES:
        raise ResponseHeaderError(f"meta is longer than {MAX_META_BYTES} bytes")
    try:
        meta = meta_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ResponseHeaderError("meta is not valid UTF-8") from None
    if "\r" in meta or "\n" in meta:
        raise ResponseHeaderError("meta contains CR or LF")
    return status, meta


def _preview(data: bytes, limit: int = 40) -> str:
    text = repr(data[:limit])
    return text + ("…" if len(data) > limit else "")
