"""The PROXY protocol parser (v1 and v2): the specification's examples, its edges, and properties.

The encoders here are written from the specification (haproxy.org's
``proxy-protocol.txt``), independently of the parser.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.server.proxy import (
    MAX_LENGTH,
    V1_MAX_LENGTH,
    V2_MAX_PAYLOAD,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
)

CLIENT_HELLO = bytes.fromhex("160301020001") + b"\x00" * 32  # what a TLS client sends first


def v1(protocol: str, source: str, destination: str, sport: int, dport: int) -> bytes:
    return f"PROXY {protocol} {source} {destination} {sport} {dport}\r\n".encode("ascii")


def v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None,
    *,
    command: int = 0x1,
    tlvs: bytes = b"",
) -> bytes:
    """A version 2 header: TCP over IPv4 or IPv6 (from the source's version), or UNSPEC."""
    if source is None or destination is None:
        family, block = 0x00, b""
    else:
        src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
        family = 0x11 if src.version == 4 else 0x21
        block = src.packed + dst.packed + source[1].to_bytes(2, "big")
        block += destination[1].to_bytes(2, "big")
    payload = block + tlvs
    return (
        V2_SIGNATURE + bytes([0x20 | command, family]) + len(payload).to_bytes(2, "big") + payload
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


# -- the specification's examples -------------------------------------------------------------


def test_v1_example_of_the_specification():
    line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    header = parse_proxy_header(line + b"GET / HTTP/1.1\r\n")
    assert header == ProxyHeader(
        version=1,
        length=len(line),
        source=("192.168.0.1", 56324),
        destination=("192.168.0.11", 443),
    )


@pytest.mark.parametrize(
    ("line", "length"),
    [
        # The worst cases the specification lists, with their lengths.
        (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 56),
        (
            b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".replace(
                b"ffff:f...f:ffff", b":".join([b"ffff"] * 8)
            ),
            104,
        ),
        (b"PROXY UNKNOWN\r\n", 15),
        (
            b"PROXY UNKNOWN " + b" ".join([b":".join([b"ffff"] * 8)] * 2) + b" 65535 65535\r\n",
            107,
        ),
    ],
)
def test_v1_worst_cases_of_the_specification(line, length):
    assert len(line) == length
    header = parse_proxy_header(line + CLIENT_HELLO)
    assert header is not None
    assert header.length == length
    assert header.version == 1
    if b"UNKNOWN" in line:
        assert header.source is None  # use the connection's own endpoints
    else:
        assert header.source is not None
        assert header.source[1] == 65535


def test_v2_ipv4_and_ipv6_with_tlvs():
    block = v2(("203.0.113.7", 51000), ("198.51.100.1", 1965), tlvs=tlv(0x04, b""))
    assert len(block) == 16 + 12 + 3
    header = parse_proxy_header(block + CLIENT_HELLO)
    assert header == ProxyHeader(
        version=2,
        length=len(block),
        source=("203.0.113.7", 51000),
        destination=("198.51.100.1", 1965),
        tlvs=((0x04, b""),),
    )
    six = v2(("2001:db8::7", 1), ("2001:db8::1", 1965), tlvs=tlv(0x02, b"example.org"))
    parsed = parse_proxy_header(six)
    assert parsed is not None
    assert parsed.source == ("2001:db8::7", 1)
    assert parsed.tlvs == ((0x02, b"example.org"),)


def test_v2_local_is_a_health_check_whatever_follows():
    header = parse_proxy_header(v2(None, None, command=0x0))
    assert header == ProxyHeader(version=2, length=16, local=True)
    # Addresses after LOCAL are to be ignored, not trusted.
    with_addresses = v2(("203.0.113.7", 1), ("198.51.100.1", 2), command=0x0)
    parsed = parse_proxy_header(with_addresses)
    assert parsed is not None
    assert parsed.local
    assert parsed.source is None
    assert parsed.length == 28


def test_v2_unspecified_family_and_unix_sockets_carry_no_client_address():
    assert parse_proxy_header(v2(None, None)) == ProxyHeader(version=2, length=16)
    unix = V2_SIGNATURE + bytes([0x21, 0x31]) + (216).to_bytes(2, "big") + b"/" * 216
    header = parse_proxy_header(unix)
    assert header is not None
    assert header.source is None
    assert header.length == 16 + 216


# -- what is refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (CLIENT_HELLO, "no PROXY header"),  # a client that connects without the proxy
        (b"GET / HTTP/1.0\r\n", "no PROXY header"),
        (b"PROXX TCP4", "no PROXY header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "not ended by CRLF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CRLF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rZ", "byte"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "must be"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "must be"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "must be"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "must be"),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "IPv4"),  # octal or decimal? neither
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "IPv4"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "IPv4"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "IPv6"),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "byte"),  # no zones
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "byte"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n", "byte"),
        (b"PROXY UNKNOWN " + b"1" * 100, "longer than 107"),
        (b"PROXY TCP4 \xc3\xa9 5.6.7.8 1 2\r\n", "byte"),
        (V2_SIGNATURE[:5] + b"X", "no PROXY header"),
        (V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12), "version 1 is not 2"),
        (V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12), "command"),
        (V2_SIGNATURE + bytes([0x21, 0x41, 0, 12]) + bytes(12), "family"),
        (V2_SIGNATURE + bytes([0x21, 0x13, 0, 12]) + bytes(12), "family"),
        (V2_SIGNATURE + bytes([0x21, 0x12, 0, 12]) + bytes(12), "datagram"),
        (V2_SIGNATURE + bytes([0x21, 0x11, 0, 11]) + bytes(11), "needs 12"),
        (V2_SIGNATURE + bytes([0x21, 0x21, 0, 12]) + bytes(12), "needs 36"),
        (V2_SIGNATURE + bytes([0x21, 0x11]) + (V2_MAX_PAYLOAD + 1).to_bytes(2, "big"), "at most"),
        (V2_SIGNATURE + bytes([0x21, 0x11, 0, 14]) + bytes(14), "truncated"),
        (V2_SIGNATURE + bytes([0x21, 0x11, 0, 15]) + bytes(12) + b"\x01\x00\x05", "longer"),
    ],
)
def test_malformed_headers_are_refused(data, complaint):
    with pytest.raises(ProxyHeaderError, match=complaint):
        parse_proxy_header(data)


def test_a_tls_client_hello_is_refused_at_its_first_byte():
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(CLIENT_HELLO[:1])


def test_incomplete_headers_need_more_bytes():
    assert parse_proxy_header(b"") is None
    assert parse_proxy_header(b"PRO") is None
    assert parse_proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r") is None
    assert parse_proxy_header(V2_SIGNATURE[:7]) is None
    assert parse_proxy_header(V2_SIGNATURE + bytes([0x21, 0x11, 0, 12]) + bytes(11)) is None


def test_max_length_covers_every_header():
    assert MAX_LENGTH >= V1_MAX_LENGTH
    biggest = v2(
        ("203.0.113.7", 1), ("198.51.100.1", 2), tlvs=tlv(0xEE, bytes(V2_MAX_PAYLOAD - 15))
    )
    assert len(biggest) == MAX_LENGTH
    header = parse_proxy_header(biggest)
    assert header is not None
    assert header.length == MAX_LENGTH


# -- properties ---------------------------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)
tlv_lists = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=4).map(
    lambda items: (tuple(items), b"".join(tlv(kind, value) for kind, value in items))
)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    """A valid header of any kind, with what it must parse to."""
    kind = draw(st.sampled_from(["v1-tcp4", "v1-tcp6", "v1-unknown", "v2", "v2-local"]))
    if kind == "v1-unknown":
        line = b"PROXY UNKNOWN\r\n"
        return line, ProxyHeader(version=1, length=len(line))
    if kind.startswith("v1"):
        addresses = ipv4 if kind == "v1-tcp4" else ipv6
        source = (draw(addresses), draw(ports))
        destination = (draw(addresses), draw(ports))
        protocol = "TCP4" if kind == "v1-tcp4" else "TCP6"
        line = v1(protocol, source[0], destination[0], source[1], destination[1])
        return line, ProxyHeader(1, len(line), source=source, destination=destination)
    addresses = draw(st.sampled_from([ipv4, ipv6]))
    source = (draw(addresses), draw(ports))
    destination = (draw(addresses), draw(ports))
    parsed_tlvs, raw_tlvs = draw(tlv_lists)
    if kind == "v2-local":
        block = v2(source, destination, command=0x0, tlvs=raw_tlvs)
        return block, ProxyHeader(2, len(block), local=True)
    block = v2(source, destination, tlvs=raw_tlvs)
    return block, ProxyHeader(
        2, len(block), source=source, destination=destination, tlvs=parsed_tlvs
    )


@given(headers(), st.binary(max_size=64))
def test_valid_headers_parse_and_leave_the_clients_bytes(case, after):
    raw, expected = case
    assert parse_proxy_header(raw + after) == expected
    assert expected.length == len(raw)


@given(headers())
def test_every_strict_prefix_of_a_header_asks_for_more(case):
    """So a reader may take every byte it was given off the socket: all of them are header."""
    raw, _ = case
    for end in range(len(raw)):
        assert parse_proxy_header(raw[:end]) is None


@given(st.binary(max_size=300))
def test_any_bytes_give_an_answer_or_a_proxy_header_error(data):
    try:
        header = parse_proxy_header(data)
    except ProxyHeaderError as exc:
        assert str(exc)
    else:
        if header is not None:
            assert 15 <= header.length <= min(len(data), MAX_LENGTH)
            if header.source is not None:
                ipaddress.ip_address(header.source[0])
                assert 0 <= header.source[1] <= 65535
        else:
            assert len(data) < MAX_LENGTH


@given(headers(), st.data())
def test_a_changed_signature_byte_is_refused(case, data):
    raw, expected = case
    signature = b"PROXY " if expected.version == 1 else V2_SIGNATURE
    at = data.draw(st.integers(0, len(signature) - 1))
    other = data.draw(st.integers(0, 255).filter(lambda byte: byte != signature[at]))
    changed = raw[:at] + bytes([other]) + raw[at + 1 :]
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(changed)
