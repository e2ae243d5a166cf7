"""The Gemini protocol core, sans-I/O: request lines in, response headers out.

Nothing here touches a socket.  A server feeds received bytes to a
:class:`RequestReader`, validates the line with :func:`parse_request` and
:func:`check_target`, and frames its answer with :func:`format_header`.  A
client does the mirror image with :class:`HeaderReader` and
:func:`parse_header`.  Every violation raises :class:`GeminiError` carrying the
status and meta the peer should be told.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import IntEnum

from .escape import printable
from .url import URL, URLError, climbs_above_root, parse_url, percent_decode

__all__ = [
    "MAX_META_BYTES",
    "MAX_URL_BYTES",
    "GeminiError",
    "HeaderReader",
    "RequestReader",
    "ResponseHeaderError",
    "Status",
    "TitanRequest",
    "check_header",
    "check_target",
    "decode_path",
    "format_header",
    "parse_header",
    "parse_request",
    "parse_titan",
]

MAX_URL_BYTES = 1024
MAX_META_BYTES = 1024
_CRLF = b"\r\n"
_BOM = b"\xef\xbb\xbf"
_SCHEMES = frozenset({"gemini"})
_SCHEMES_WITH_TITAN = frozenset({"gemini", "titan"})


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


_STATUSES = frozenset(Status)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_MIME_WORD = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"
_MIME = re.compile(
    rf'{_MIME_WORD}/{_MIME_WORD}(?: *; *{_MIME_WORD}=(?:{_MIME_WORD}|"(?:[^"\\]|\\.)*"))*'
)
"""A MIME type with optional parameters (RFC 2045 tokens; a value may be a quoted string)."""


def check_header(status: int, meta: str) -> None:
    """Raise :class:`ValueError` saying what is wrong if ``<status> <meta>`` is not a valid header.

    Valid means: a status the specification defines (10, 11, 20, 30, 31, 40-44,
    50-53, 59, 60-62); a meta of at most 1024 bytes of UTF-8 without control
    characters (CR or LF would end the header early, and the others have no
    place in a header); for 2x a MIME type (``type/subtype`` and optional
    ``; name=value`` parameters, RFC 2045), for 3x the (non-empty) URL to go to.
    The client side (:func:`parse_header`) is more lenient, as the
    specification asks of clients.
    """
    if status.__class__ is not Status and (not isinstance(status, int) or status not in _STATUSES):
        known = ", ".join(str(int(code)) for code in Status)
        raise ValueError(f"{status!r} is not a Gemini status (one of {known})")
    if not isinstance(meta, str):
        raise ValueError(f"meta must be a str, not {type(meta).__name__}")
    control = _CONTROL.search(meta)
    if control is not None:
        raise ValueError(
            f"meta {_preview_text(meta)} contains the control character {control.group()!r}"
            " (CR or LF would end the header early; use hospes.gemini.escape.printable"
            " for untrusted text)"
        )
    if len(meta) > MAX_META_BYTES // 4 and len(meta.encode("utf-8")) > MAX_META_BYTES:
        raise ValueError(f"meta {_preview_text(meta)} is longer than {MAX_META_BYTES} bytes")
    kind = status // 10
    if kind == 2:
        if _MIME.fullmatch(meta) is None:
            raise ValueError(
                f"the meta of a {status} response must be a MIME type such as "
                f"'text/gemini; lang=en', not {_preview_text(meta)}"
            )
    elif kind == 3 and not meta:
        raise ValueError(f"the meta of a {status} response must be the URL to redirect to")


def _preview_text(text: str, limit: int = 60) -> str:
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


class GeminiError(Exception):
    """An answer with a status other than 2x, raised instead of returned.

    The protocol core raises it for a request that breaks a rule; a handler
    raises it to answer with that status and meta from wherever it is
    (``raise GeminiError(Status.NOT_FOUND, "no such page")``), as the
    application layer turns it into the response.  The status and meta are
    checked here, by :func:`check_header`: an invalid one is a
    :class:`ValueError` where it is raised.  2x is refused, as it needs a body.
    """

    def __init__(self, status: int, meta: str) -> None:
        check_header(status, meta)
        if status // 10 == 2:
            raise ValueError(f"GeminiError carries an error, not {status}: return a Response")
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
    than 1026 bytes of a request.  Bytes that came after the CRLF in the same
    read are kept in :attr:`rest`: the start of a Titan upload's body, ignored
    by a Gemini request.
    """

    __slots__ = ("_buffer", "rest")

    def __init__(self) -> None:
        self._buffer = b""
        self.rest = b""
        """Bytes received after the CRLF (the start of an upload's body)."""

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
        self.rest = buffer[end + 1 :]
        return buffer[: end - 1]

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete line are held."""
        return len(self._buffer)


def parse_request(line: bytes, *, titan: bool = False) -> URL:
    """Validate a request line (without CRLF) and return its URL.

    Raises :class:`GeminiError` with 59 for anything that is not an absolute
    URL a Gemini server may answer, and 53 for a URL of another scheme
    (``titan:`` is one unless ``titan`` is true: then :func:`parse_titan`
    reads its parameters).
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
    if url.scheme not in (_SCHEMES_WITH_TITAN if titan else _SCHEMES):
        raise GeminiError(Status.PROXY_REQUEST_REFUSED, f"this server does not proxy {url.scheme}:")
    if not url.host:
        raise _bad_request("URL has no host")
    if url.userinfo is not None:
        raise _bad_request("URL must not contain userinfo")
    if url.fragment is not None:
        raise _bad_request("URL must not contain a fragment")
    return url


TITAN_DEFAULT_MIME = "text/gemini"
_SIZE = re.compile(r"\A[0-9]{1,18}\Z")
_TITAN_KEYS = frozenset({"size", "mime", "token"})


@dataclass(frozen=True, slots=True)
class TitanRequest:
    """A Titan upload's request line: where to, how many bytes, what type, which token.

    ``url`` is the ``titan:`` URL without its parameters (``;size=…`` removed
    from the path; a query, if any, kept).  The body of ``size`` bytes follows
    the request line on the same connection.
    """

    url: URL
    size: int
    mime: str = TITAN_DEFAULT_MIME
    token: str | None = None


def parse_titan(url: URL) -> TitanRequest:
    """Read the parameters of a ``titan://host[:port]/path;size=N;mime=TYPE;token=T`` URL.

    The parameters start at the first ``;`` of the path (a ``;`` in a file name
    is written ``%3B``); values are percent-decoded.  ``size`` (decimal bytes)
    is required, ``mime`` defaults to ``text/gemini`` and must be a MIME type,
    ``token`` is optional; a parameter given twice, an empty or malformed one
    is a 59; parameters this server does not know are ignored, as the Titan
    specification lets servers do.
    """
    path, separator, parameters = url.path.partition(";")
    if not separator:
        raise _bad_request("a Titan upload needs a size: add ;size=BYTES to the path")
    values: dict[str, str] = {}
    for parameter in parameters.split(";"):
        key, equals, raw = parameter.partition("=")
        if not equals or not key:
            raise _bad_request(f"malformed Titan parameter {_preview_text(parameter, 40)}")
        key = key.lower()
        if key not in _TITAN_KEYS:
            continue
        if key in values:
            raise _bad_request(f"Titan parameter {key!r} is given twice")
        try:
            values[key] = percent_decode(raw)
        except URLError as exc:
            raise _bad_request(f"Titan parameter {key!r}: {exc}") from None
    size_text = values.get("size")
    if size_text is None:
        raise _bad_request("a Titan upload needs a size: add ;size=BYTES to the path")
    if _SIZE.match(size_text) is None:
        raise _bad_request(f"Titan size must be a number of bytes, not {_preview_text(size_text)}")
    mime = values.get("mime", TITAN_DEFAULT_MIME)
    if _MIME.fullmatch(mime) is None:
        raise _bad_request(f"Titan mime must be a MIME type, not {_preview_text(mime)}")
    token = values.get("token")
    if token is not None and _CONTROL.search(token) is not None:
        raise _bad_request("Titan token contains a control character")
    return TitanRequest(url.with_path(path or "/", url.query), int(size_text), mime, token)


def check_target(
    url: URL,
    hostnames: Collection[str],
    ports: Collection[int],
    server_name: str | None = None,
) -> None:
    """Refuse (53) a request for a host or port this server does not answer for.

    ``hostnames`` must already be normalised as :func:`hospes.gemini.url.parse_url`
    normalises hosts (lower case, IDNA, no trailing dot), and so must
    ``server_name``, the name the client asked for in the TLS handshake (SNI;
    None when it sent none).  A request for another host than the one named in
    the handshake is refused: the client was shown that host's certificate,
    so the other host's content must not be served under it.
    """
    if url.host not in hostnames:
        raise GeminiError(Status.PROXY_REQUEST_REFUSED, f"this server does not serve {url.host}")
    if url.effective_port not in ports:
        raise GeminiError(
            Status.PROXY_REQUEST_REFUSED,
            f"this server does not serve port {url.effective_port}",
        )
    if server_name is not None and server_name != url.host:
        raise GeminiError(
            Status.PROXY_REQUEST_REFUSED,
            f"this connection is for {printable(server_name, 255)} (TLS server name), "
            f"not {url.host}",
        )


def decode_path(url: URL) -> str:
    """The decoded path of a request URL, exactly as the server routes it.

    Raises :class:`GeminiError` (59) for invalid UTF-8, for encoded NUL or
    ``/`` (which would make the decoded path ambiguous), and for dot segments
    that climb above the root (``/../../etc``: see
    :func:`~hospes.gemini.url.climbs_above_root`).
    """
    raw = url.path
    if "%" in raw:
        lowered = raw.lower()
        if "%00" in lowered:
            raise _bad_request("encoded NUL in the path")
        if "%2f" in lowered:
            raise _bad_request("encoded '/' in the path")
    try:
        path = percent_decode(raw) or "/"
    except URLError as exc:
        raise _bad_request(str(exc)) from None
    if ".." in path and climbs_above_root(path):
        raise _bad_request("the path's '..' segments climb above the root")
    return path


def format_header(status: int, meta: str) -> bytes:
    """Frame a response header ``<status> <meta>\\r\\n``.

    Raises :class:`ValueError` for anything :func:`check_header` refuses:
    these are bugs of the caller, not of the peer.
    """
    check_header(status, meta)
    return b"%d %s\r\n" % (status, meta.encode("utf-8"))


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
