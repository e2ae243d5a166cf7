"""Remote addresses as integers: parsing, CIDR sets (deny and trusted lists) and grouping.

Every connection's address is looked up at accept time, before any TLS work,
so the lookups are kept cheap: an address becomes one integer (IPv4 addresses
as IPv4-mapped IPv6, ``::ffff:a.b.c.d``, so both families share one number
line), a list of networks becomes sorted, merged ``[first, last]`` ranges
searched with :func:`bisect.bisect_right`, and no :mod:`ipaddress` object is
built per connection.

Limits and blocks apply to an address *group*: an IPv4 address on its own,
an IPv6 address with its interface bits cleared (by default its /64, the
prefix one subscriber gets; counting single IPv6 addresses would let anyone
with a /64 take 2**64 turns).
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "AddressError",
    "AddressSet",
    "format_address",
    "format_group",
    "group",
    "parse_address",
    "parse_network",
    "read_address_file",
]

_MAPPED = 0xFFFF << 32
_MAPPED_MASK = ((1 << 96) - 1) << 32


class AddressError(ValueError):
    """An address or network that cannot be parsed; the message says which and why."""


def parse_address(text: str) -> int:
    """An IPv4 or IPv6 address (as accepted sockets report it) as a 128-bit integer.

    IPv4 addresses, and IPv4-mapped IPv6 addresses from dual-stack sockets,
    become the same ``::ffff:a.b.c.d`` number; a zone (``%eth0``) is dropped.
    Raises :class:`AddressError` for anything else.
    """
    try:
        if ":" not in text:
            return _MAPPED | int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text.partition("%")[0]), "big")
    except OSError:
        raise AddressError(f"{text!r} is not an IP address") from None


def format_address(value: int) -> str:
    """The usual text of an address integer (dotted for IPv4-mapped ones)."""
    if value & _MAPPED_MASK == _MAPPED:
        return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address(value))


def group(value: int, ipv6_prefix: int = 64) -> int:
    """The key under which an address is capped, rate-limited and blocked.

    IPv4 addresses are their own group; IPv6 addresses keep their first
    ``ipv6_prefix`` bits.  An IPv6 group never equals an IPv4 address: a
    prefix of /96 or longer keeps the address outside ``::ffff:0:0/96``, and a
    shorter one clears bit 32, which every IPv4-mapped number has set.
    """
    if value & _MAPPED_MASK == _MAPPED:
        return value
    shift = 128 - ipv6_prefix
    return (value >> shift) << shift


def format_group(key: object, ipv6_prefix: int = 64) -> str:
    """An address group (see :func:`group`) as people write it: ``192.0.2.7``, ``2001:db8::/64``."""
    if not isinstance(key, int):
        return str(key)
    if key & _MAPPED_MASK == _MAPPED or ipv6_prefix == 128:
        return format_address(key)
    return f"{format_address(key)}/{ipv6_prefix}"


def parse_network(text: str) -> tuple[int, int]:
    """An address or CIDR network (``192.0.2.0/24``, ``2001:db8::/32``) as an inclusive range.

    Host bits must be zero (``192.0.2.1/24`` is refused rather than silently
    widened, since it is most likely a typo).  Raises :class:`AddressError`.
    """
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise AddressError(f"{text!r} is not an IP address or network: {exc}") from None
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.version == 4:
        return _MAPPED | first, _MAPPED | last
    return first, last


def _without_ipv4(first: int, last: int) -> list[tuple[int, int]]:
    """An IPv6 range minus ``::ffff:0:0/96``: ``::/0`` must not cover every IPv4 address.

    A range inside ``::ffff:0:0/96`` is kept: written that way, it means IPv4 addresses.
    """
    low, high = _MAPPED, _MAPPED | 0xFFFFFFFF
    if last < low or first > high or (low <= first and last <= high):
        return [(first, last)]
    parts = []
    if first < low:
        parts.append((first, low - 1))
    if last > high:
        parts.append((high + 1, last))
    return parts


class AddressSet:
    """A set of addresses and networks, tested with one binary search."""

    __slots__ = ("_firsts", "_lasts", "entries")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        """Parse ``entries`` (addresses or CIDR networks); raises :class:`AddressError`."""
        self.entries = tuple(entries)
        ranges = sorted(
            part
            for entry in self.entries
            for part in (
                [parse_network(entry)] if ":" not in entry else _without_ipv4(*parse_network(entry))
            )
        )
        merged: list[list[int]] = []
        for first, last in ranges:
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        self._firsts = [first for first, _ in merged]
        self._lasts = [last for _, last in merged]

    def __contains__(self, value: object) -> bool:
        """Whether an address integer (from :func:`parse_address`) is in the set."""
        if not isinstance(value, int):
            return False
        index = bisect.bisect_right(self._firsts, value) - 1
        return index >= 0 and value <= self._lasts[index]

    def __bool__(self) -> bool:
        return bool(self._firsts)

    def __len__(self) -> int:
        """The number of disjoint ranges after merging."""
        return len(self._firsts)

    def __repr__(self) -> str:
        return f"AddressSet({list(self.entries)!r})"


def read_address_file(path: Path) -> list[str]:
    """The entries of a deny-list file: one address or network per line, ``#`` comments.

    Raises :class:`AddressError` naming the file and line of a bad entry, and
    :class:`OSError` when the file cannot be read.
    """
    entries = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, 1):
            text = raw.partition("#")[0].strip()
            if not text:
                continue
            try:
                parse_network(text)
            except AddressError as exc:
                raise AddressError(f"{path}:{number}: {exc}") from None
            entries.append(text)
    return entries
