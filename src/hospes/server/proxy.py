"""The PROXY protocol, versions 1 and 2: the header a load balancer sends before the client's bytes.

HAProxy's protocol (haproxy.org, ``proxy-protocol.txt``): a proxy that passes a
TCP connection on starts it with one header naming the client's address and
port, then relays the client's bytes (for Gemini, the TLS ClientHello)
unchanged.  Version 1 is a line of text, version 2 a binary block; the first
bytes tell them apart, so a server accepts either.

Sans-I/O, like :class:`~hospes.gemini.protocol.RequestReader`:
:func:`parse_proxy_header` takes the bytes received so far and answers None
(a valid beginning: read more), raises :class:`ProxyHeaderError` (not a valid
header: drop the connection), or returns the :class:`ProxyHeader`, whose
``length`` says where the client's bytes begin.  When it answers None, every
byte given is part of the header, so a caller may consume them all from the
socket without ever taking a byte of the ClientHello.  A header is never
longer than :data:`MAX_LENGTH`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = [
    "MAX_LENGTH",
    "V1_MAX_LENGTH",
    "V2_MAX_PAYLOAD",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "parse_proxy_header",
]

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107
"""The longest version 1 line, CRLF included (the specification's worst case)."""
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MAX_PAYLOAD = 2048
"""The longest version 2 address block and TLVs accepted (HAProxy's in TCP mode: a few dozen)."""
MAX_LENGTH = 16 + V2_MAX_PAYLOAD
"""No header is longer: the most bytes a server reads before the client's own."""

_V2_COMMANDS = {0x0: "LOCAL", 0x1: "PROXY"}
_V2_INET, _V2_INET6, _V2_UNIX = 0x1, 0x2, 0x3
_V2_STREAM = 0x1
_V2_ADDRESS_SIZES = {0x0: 0, _V2_INET: 12, _V2_INET6: 36, _V2_UNIX: 216}
_V1_PROTOCOLS: dict[bytes, type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]] = {
    b"TCP4": ipaddress.IPv4Address,
    b"TCP6": ipaddress.IPv6Address,
}
_V1_CHARACTERS = frozenset(b"0123456789abcdefABCDEF.:PROXYTCPUNKNOW \r\n")


class ProxyHeaderError(ValueError):
    """Bytes that are not a PROXY header (the message says what is wrong, for the log)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed PROXY header.

    ``source`` is the client's (address, port) as the proxy saw it, the
    address in its usual text form; None when the header carries none
    (version 1 ``UNKNOWN``, version 2 ``LOCAL``, an unspecified family or a
    Unix socket), in which case the specification says to use the
    connection's own endpoints.  ``local`` is version 2's ``LOCAL`` command:
    the proxy's own connection (a health check), not a client's.
    """

    version: int
    length: int
    """Bytes of the header: the client's bytes start after them."""
    local: bool = False
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()
    """Version 2's type-length-value extensions, as sent (hospes uses none of them)."""


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``; None if more bytes are needed to tell.

    Raises :class:`ProxyHeaderError` as soon as the bytes cannot begin a
    valid header (a TLS ClientHello sent without a header fails at its first
    byte).
    """
    if data[:1] == V1_PREFIX[:1]:
        return _parse_v1(data)
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    if not data:
        return None
    raise ProxyHeaderError(f"no PROXY header: the connection starts with {data[:8]!r}")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V1_PREFIX):
        if V1_PREFIX.startswith(data):
            return None
        raise ProxyHeaderError(f"no PROXY header: the connection starts with {data[:8]!r}")
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    line = data[: V1_MAX_LENGTH if end < 0 else end]
    stray = set(line) - _V1_CHARACTERS
    if stray:
        raise ProxyHeaderError(f"a PROXY v1 line with the byte {bytes([min(stray)])!r}")
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyHeaderError(f"a PROXY v1 line longer than {V1_MAX_LENGTH} bytes")
        if b"\r" in data[:-1] or b"\n" in data:
            raise ProxyHeaderError("a PROXY v1 line not ended by CRLF")
        return None
    length = end + 2
    parts = line.split(b" ")
    if parts[1:2] == [b"UNKNOWN"]:
        # The rest of the line is to be ignored: the proxy does not know the client.
        return ProxyHeader(version=1, length=length)
    if len(parts) != 6 or parts[1] not in _V1_PROTOCOLS:
        raise ProxyHeaderError(
            "a PROXY v1 line must be 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT' "
            "or 'PROXY UNKNOWN'"
        )
    family = _V1_PROTOCOLS[parts[1]]
    source = _v1_address(family, parts[2]), _v1_port(parts[4])
    destination = _v1_address(family, parts[3]), _v1_port(parts[5])
    return ProxyHeader(version=1, length=length, source=source, destination=destination)


def _v1_address(family: type[ipaddress.IPv4Address | ipaddress.IPv6Address], text: bytes) -> str:
    try:
        return str(family(text.decode("ascii")))
    except ValueError:
        version = 4 if family is ipaddress.IPv4Address else 6
        raise ProxyHeaderError(f"not an IPv{version} address: {text!r}") from None


def _v1_port(text: bytes) -> int:
    if not (text.isdigit() and len(text) <= 5 and int(text) <= 65535):
        raise ProxyHeaderError(f"not a port number: {text!r}")
    return int(text)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    known = data[: len(V2_SIGNATURE)]
    if known != V2_SIGNATURE[: len(known)]:
        raise ProxyHeaderError(f"no PROXY header: the connection starts with {data[:8]!r}")
    if len(data) < 16:
        return None
    version, command = data[12] >> 4, data[12] & 0xF
    if version != 2:
        raise ProxyHeaderError(f"PROXY protocol version {version} is not 2")
    if command not in _V2_COMMANDS:
        raise ProxyHeaderError(f"unknown PROXY v2 command {command:#x}")
    family, transport = data[13] >> 4, data[13] & 0xF
    if family not in _V2_ADDRESS_SIZES or transport > 2:
        raise ProxyHeaderError(f"unknown PROXY v2 address family and protocol {data[13]:#04x}")
    payload = int.from_bytes(data[14:16], "big")
    if payload > V2_MAX_PAYLOAD:
        raise ProxyHeaderError(f"a PROXY v2 header of {payload} bytes (at most {V2_MAX_PAYLOAD})")
    length = 16 + payload
    if len(data) < length:
        return None
    body = data[16:length]
    if command == 0x0:
        # LOCAL: the proxy speaks for itself; whatever addresses follow are to be ignored.
        return ProxyHeader(version=2, length=length, local=True)
    size = _V2_ADDRESS_SIZES[family]
    if payload < size:
        raise ProxyHeaderError(f"a PROXY v2 address block of {payload} bytes (needs {size})")
    tlvs = _tlvs(body[size:])
    if family in (_V2_INET, _V2_INET6):
        if transport != _V2_STREAM:
            raise ProxyHeaderError("a PROXY v2 header for a datagram (UDP) connection")
        width = 4 if family == _V2_INET else 16
        addresses = body[: 2 * width]
        ports = body[2 * width : size]
        make = ipaddress.IPv4Address if family == _V2_INET else ipaddress.IPv6Address
        source = str(make(addresses[:width])), int.from_bytes(ports[:2], "big")
        destination = str(make(addresses[width:])), int.from_bytes(ports[2:], "big")
        return ProxyHeader(2, length, source=source, destination=destination, tlvs=tlvs)
    return ProxyHeader(2, length, tlvs=tlvs)  # unspecified family, or a Unix socket


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    found = []
    at = 0
    while at < len(data):
        if len(data) - at < 3:
            raise ProxyHeaderError("a truncated PROXY v2 TLV")
        kind, size = data[at], int.from_bytes(data[at + 1 : at + 3], "big")
        value = data[at + 3 : at + 3 + size]
        if len(value) != size:
            raise ProxyHeaderError("a PROXY v2 TLV longer than the header")
        found.append((kind, value))
        at += 3 + size
    return tuple(found)
