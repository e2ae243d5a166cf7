"""What a gateway (a CGI script, an SCGI application) answers: its header line, checked.

A gateway's first line must be a valid Gemini header (``<status> <meta>``,
:func:`~hospes.gemini.protocol.check_header`); a bare LF ending is accepted
as well as CRLF, as scripts written with ``print`` end their lines so.
Anything else is the gateway's fault, and the client gets 42.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..app.response import Response
from ..gemini.escape import printable
from ..gemini.protocol import (
    MAX_META_BYTES,
    ResponseHeaderError,
    Status,
    check_header,
    parse_header,
)

__all__ = ["GatewayError", "gateway_failure", "parse_gateway_header", "read_gateway_header"]

_LONGEST_LINE = 3 + MAX_META_BYTES + 2
"""Two digits, a space, the meta and CRLF."""


class GatewayError(Exception):
    """A gateway's output that is not a response: the message says what was wrong with it."""


def gateway_failure(meta: str) -> Response:
    """The 42 a client gets when a gateway fails (the details go to the server's log)."""
    return Response(Status.CGI_ERROR, meta)


def parse_gateway_header(line: bytes) -> tuple[int, str]:
    """The status and meta of a gateway's first line (without its LF); :class:`GatewayError`."""
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        status, meta = parse_header(line)
        check_header(status, meta)
    except (ResponseHeaderError, ValueError) as exc:
        raise GatewayError(
            f"its first line {printable(line.decode('utf-8', 'replace'), 80)!r} "
            f"is not a valid Gemini header: {exc}"
        ) from None
    return status, meta


async def read_gateway_header(
    read: Callable[[int], Awaitable[bytes]],
) -> tuple[int, str, bytes]:
    """Read a gateway's header line with ``read(n)``; the status, the meta, and the bytes after.

    Raises :class:`GatewayError` for output that ends before a line, a line
    too long to be a header, or a line that is not a valid one.
    """
    buffer = b""
    while True:
        data = await read(4096)
        if not data:
            if not buffer:
                raise GatewayError("it wrote nothing")
            raise GatewayError("its output ended in the middle of the header line")
        buffer += data
        end = buffer.find(b"\n", 0, _LONGEST_LINE)
        if end >= 0:
            status, meta = parse_gateway_header(buffer[:end])
            return status, meta, buffer[end + 1 :]
        if len(buffer) >= _LONGEST_LINE:
            raise GatewayError(f"its first line is longer than {_LONGEST_LINE - 2} bytes")
