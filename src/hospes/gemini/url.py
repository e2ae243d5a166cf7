"""Absolute URLs as Gemini uses them: strict RFC 3986 / RFC 3987 parsing, no I/O.

The standard library's ``urllib.parse`` is deliberately lenient (it strips
whitespace and control characters, keeps broken percent-escapes, and does not
resolve relative references for unknown schemes such as ``gemini``), so the
protocol core uses this module instead.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote_to_bytes

import idna

__all__ = [
    "DEFAULT_PORT",
    "URL",
    "URLError",
    "climbs_above_root",
    "domain_name",
    "normalize_host",
    "normalize_path",
    "parse_url",
    "percent_decode",
    "quote_path",
]

DEFAULT_PORT = 1965

# RFC 3986, appendix B: the generic split of a URI reference into its parts.
_SPLIT = re.compile(r"\A(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?\Z", re.S)
_SCHEME = re.compile(r"\A[A-Za-z][A-Za-z0-9+.\-]*\Z")
# Characters that may never appear literally in a URI or IRI (RFC 3986 section 2,
# RFC 3987 sections 2.2 and 4.1): controls, space, the "unwise" ASCII characters,
# C1 controls, bidi formatting characters (the Arabic letter mark too) and the byte-order mark.
_FORBIDDEN = re.compile(
    '[\\x00-\\x20\\x7f-\\x9f"<>\\\\^`{|}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]'
)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BRACKETS = re.compile(r"[\[\]]")
# reg-name of RFC 3986 (unreserved and sub-delims), plus non-ASCII for IRIs.
_REG_NAME = re.compile(r"\A[A-Za-z0-9\-._~!$&'()*+,;=\x80-\U0010ffff]*\Z")
_PORT = re.compile(r"\A[0-9]*\Z")


class URLError(ValueError):
    """A string that is not a valid absolute URL; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class URL:
    """An absolute URL, split and normalised.

    ``host`` is canonical (:func:`normalize_host`): lower case, without a
    trailing dot, IDNA 2008 A-labels when it was not ASCII, IP addresses in
    their usual notation, IPv6 without brackets.  ``path`` and ``query``
    are kept exactly as written (still percent-encoded).
    """

    scheme: str
    host: str
    port: int | None
    path: str
    query: str | None = None
    fragment: str | None = None
    userinfo: str | None = None

    @property
    def effective_port(self) -> int:
        """The port a connection goes to: the explicit one, or 1965."""
        return DEFAULT_PORT if self.port is None else self.port

    @property
    def netloc(self) -> str:
        """``host[:port]`` as written in a URL, with brackets for IPv6."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        text = f"{self.scheme}:"
        if self.host or self.scheme == "gemini":
            userinfo = "" if self.userinfo is None else f"{self.userinfo}@"
            text += f"//{userinfo}{self.netloc}"
        text += self.path
        if self.query is not None:
            text += f"?{self.query}"
        if self.fragment is not None:
            text += f"#{self.fragment}"
        return text

    def with_path(self, path: str, query: str | None = None) -> URL:
        """The same origin with another (already encoded) path and query, no fragment."""
        return replace(self, path=path, query=query, fragment=None)

    def without_fragment(self) -> URL:
        """This URL as it is sent in a request: no fragment."""
        return replace(self, fragment=None)

    def decoded_query(self) -> str | None:
        """The query percent-decoded as UTF-8 (Gemini input), or None if absent."""
        return None if self.query is None else percent_decode(self.query)

    def join(self, reference: str) -> URL:
        """Resolve a (possibly relative) reference against this URL (RFC 3986, 5.2)."""
        match = _SPLIT.match(reference)
        if match is None:  # pragma: no cover - the pattern matches every string
            raise URLError("not a URL reference")
        scheme, authority, path, query, fragment = match.groups()
        if scheme is not None:
            return parse_url(reference)
        if authority is not None:
            return parse_url(f"{self.scheme}:{reference}")
        if path == "":
            path = self.path
            if query is None:
                query = self.query
        elif not path.startswith("/"):
            if self.path == "" and self.host:
                path = "/" + path
            else:
                path = self.path[: self.path.rfind("/") + 1] + path
        resolved = replace(self, path=_remove_dot_segments(path), query=query, fragment=fragment)
        return parse_url(str(resolved))


def parse_url(text: str) -> URL:
    """Parse an absolute URL (or IRI), rejecting anything RFC 3986/3987 forbids.

    Raises :class:`URLError` with a short, human-readable reason.
    """
    if text == "":
        raise URLError("empty URL")
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        char = bad.group()
        raise URLError(f"character {_describe(char)} at position {bad.start()} is not allowed")
    if _BAD_PERCENT.search(text):
        raise URLError("malformed percent-encoding")
    match = _SPLIT.match(text)
    if match is None:  # pragma: no cover - the pattern matches every string
        raise URLError("not a URL")
    scheme, authority, path, query, fragment = match.groups()
    if scheme is None:
        raise URLError("not an absolute URL (no scheme)")
    if not _SCHEME.match(scheme):
        raise URLError("invalid scheme")
    for part, name in ((path, "path"), (query, "query"), (fragment, "fragment")):
        if part is not None and _BRACKETS.search(part):
            raise URLError(f"'[' and ']' must be percent-encoded in the {name}")
    userinfo = None
    host = ""
    port = None
    if authority is not None:
        if "@" in authority:
            userinfo, _, authority = authority.rpartition("@")
        host, port = _parse_authority(authority)
    return URL(
        scheme=scheme.lower(),
        host=host,
        port=port,
        path=path,
        query=query,
        fragment=fragment,
        userinfo=userinfo,
    )


def _parse_authority(authority: str) -> tuple[str, int | None]:
    """Split and normalise ``host[:port]``."""
    if authority.startswith("["):
        end = authority.find("]")
        if end == -1:
            raise URLError("unterminated IPv6 literal")
        literal, rest = authority[1:end], authority[end + 1 :]
        host = _ipv6_host(literal)
        if rest and not rest.startswith(":"):
            raise URLError("unexpected text after the IPv6 literal")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if sep else None
        host = normalize_host(host)
    port = None
    if port_text:
        if not _PORT.match(port_text) or len(port_text) > 5 or int(port_text) > 65535:
            raise URLError("invalid port")
        port = int(port_text)
    return host, port


def _ipv6_host(literal: str) -> str:
    """An IPv6 literal in its canonical text; an IPv4-mapped one is the IPv4 address it maps."""
    try:
        address = ipaddress.IPv6Address(literal)
    except ValueError:
        raise URLError("invalid IPv6 literal") from None
    # ::ffff:127.0.0.1 reaches 127.0.0.1: one host must have one name (one pin, one scope).
    return str(address.ipv4_mapped or address)


def normalize_host(host: str) -> str:
    """The canonical form of a host that is not in brackets: what pins, scopes and vhosts compare.

    Lower case, no trailing dot; a name with non-ASCII characters goes through
    UTS 46 mapping and IDNA 2008 (``faß.de`` is ``xn--fa-hia.de``, as in
    current browsers; Python's ``idna`` codec is IDNA 2003, which made it
    ``fass.de``, another domain).  A name whose last label is a number is an
    IPv4 address in any notation the WHATWG URL standard (and ``inet_aton``)
    accepts, and becomes its dotted-decimal form: ``127.1``, ``2130706433``
    and ``0x7f.0.0.1`` are all ``127.0.0.1``.  Raises :class:`URLError`.
    """
    name = domain_name(host)
    return _ipv4_host(name) or name


def domain_name(host: str) -> str:
    """A reg-name as DNS compares it: :func:`normalize_host` without the IPv4 forms.

    For names that are never IP addresses, such as a certificate's DNS names.
    """
    if not _REG_NAME.match(host):
        if "%" in host:
            raise URLError("percent-encoding in the host is not supported")
        raise URLError("invalid character in the host")
    if not host.isascii():
        host = _idna_host(host)
    host = host.lower()
    if host.endswith(".") and host != ".":
        host = host[:-1]
    return host


def _idna_host(host: str) -> str:
    """UTS 46 mapping, then IDNA 2008 A-labels for the labels that are not ASCII.

    ASCII labels keep the looser reg-name rules hospes always applied to them
    (``_``, ``--`` in any place): the mapping only lower-cases them.
    """
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        return ".".join(
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in mapped.split(".")
        )
    except (UnicodeError, ValueError):
        raise URLError("host is not a valid internationalised domain name") from None


def _ipv4_host(host: str) -> str | None:
    """The dotted-decimal form of ``host`` if it is an IPv4 address, else None.

    As the WHATWG URL standard's host parser: a host whose last label is a
    number (decimal, ``0x`` hex or ``0`` octal) is an IPv4 address of one to
    four parts, the last part filling the remaining bytes, or it is invalid.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and _ipv4_number(last) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(number is None for number in numbers):
        raise URLError("invalid IPv4 address")
    values = [number for number in numbers if number is not None]
    if any(value > 255 for value in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise URLError("invalid IPv4 address (a part is out of range)")
    address = values[-1]
    for index, value in enumerate(values[:-1]):
        address += value << (8 * (3 - index))
    return str(ipaddress.IPv4Address(address))


_IPV4_NUMBER = re.compile(
    r"\A(?:0[xX](?P<hex>[0-9A-Fa-f]*)|0(?P<oct>[0-7]+)|(?P<dec>0|[1-9][0-9]*))\Z"
)
_IPV4_TOO_LONG = 2**32  # what a part too long to be a number reads as: out of range


def _ipv4_number(part: str) -> int | None:
    """A part of an IPv4 address as the WHATWG standard reads it (``0x1f``, ``017``, ``31``)."""
    match = _IPV4_NUMBER.match(part)
    if match is None:
        return None
    if len(part) > 40:  # int() of thousands of digits is slow, and refused past 4300
        return _IPV4_TOO_LONG
    if match["hex"] is not None:
        return int(match["hex"] or "0", 16)
    if match["oct"] is not None:
        return int(match["oct"], 8)
    return int(match["dec"])


def _describe(char: str) -> str:
    if char == " ":
        return "space"
    return f"U+{ord(char):04X}"


def percent_decode(text: str) -> str:
    """Decode ``%XX`` escapes as UTF-8, raising :class:`URLError` on invalid UTF-8."""
    if "%" not in text:
        return text
    if _BAD_PERCENT.search(text):
        raise URLError("malformed percent-encoding")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise URLError("percent-encoding does not decode to UTF-8") from None


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, on an encoded or decoded path."""
    output: list[str] = []
    floor = 1 if path.startswith("/") else 0
    for segment in path.split("/"):
        if segment == "..":
            if len(output) > floor:
                output.pop()
        elif segment != ".":
            output.append(segment)
    result = "/".join(output)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    if path.endswith(("/.", "/..")) and not result.endswith("/"):
        result += "/"
    return result


def normalize_path(path: str) -> str:
    """The canonical form of a decoded path: dot segments resolved, repeated slashes merged.

    Every path a server routes or checks for access goes through this, so that
    ``/a/../private``, ``//private`` and ``/private`` all name the same thing.
    """
    while "//" in path:
        path = path.replace("//", "/")
    resolved = _remove_dot_segments(path)
    return resolved if resolved.startswith("/") else "/" + resolved


def climbs_above_root(path: str) -> bool:
    """Whether the dot segments of an absolute path climb above ``/`` (``/a/../../b``).

    Repeated slashes count as one, as :func:`normalize_path` merges them.
    :func:`normalize_path` clamps such a path at the root, which a client that
    resolves its links by RFC 3986 never needs: only a broken or hostile one
    sends it, so a server refuses it rather than guess what was meant.
    """
    depth = 0
    for segment in path.split("/"):
        if segment == "..":
            if depth == 0:
                return True
            depth -= 1
        elif segment and segment != ".":
            depth += 1
    return False


def quote_path(path: str) -> str:
    """Percent-encode a decoded path for use in a URL (``/`` kept)."""
    return quote(path, safe="/!$&'()*+,;=:@-._~")
