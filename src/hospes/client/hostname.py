"""Does a certificate name a host?  RFC 6125 matching, written out because nothing here does it.

pyOpenSSL does not check hostnames, and the standard library's checker is
tied to its own ``ssl`` module.  The rules, strict on purpose:

* an IP address host matches only an IP address subjectAltName, never a DNS
  name or the common name;
* a DNS host matches the DNS subjectAltNames, compared as ASCII (IDNA 2008
  A-labels, UTS 46 mapping), case-insensitively, ignoring one trailing dot;
* a wildcard is allowed only as the whole left-most label (``*.example.org``),
  matches exactly one non-empty label and needs at least two labels after it
  (``*.org`` names no host); partial wildcards (``w*.example.org``,
  ``xn--*``) match nothing;
* the common name counts only when the certificate has no subjectAltName at
  all and the caller allows it (many Gemini certificates carry only a CN).
"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..gemini.url import URLError, domain_name

__all__ = ["certificate_names", "dns_name_matches", "match_hostname", "normalize_dns_name"]


def normalize_dns_name(name: str) -> str | None:
    """A DNS name as URL hosts are compared (:func:`~hospes.gemini.url.domain_name`), or None.

    Lower-case ASCII without a trailing dot, IDNA 2008 A-labels for non-ASCII
    labels; a ``*`` label is kept for :func:`dns_name_matches` to judge.
    """
    name = name.strip()
    if not name or name == ".":
        return None
    try:
        return domain_name(name)
    except URLError:
        return None


def certificate_names(cert: x509.Certificate) -> tuple[list[str], list[str], str | None]:
    """The DNS subjectAltNames, IP subjectAltNames (as text) and common name of ``cert``.

    A malformed subjectAltName extension reads as no names at all.
    """
    dns: list[str] = []
    addresses: list[str] = []
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    except ValueError:
        return [], [], _common_name(cert)
    else:
        dns = [str(name) for name in extension.value.get_values_for_type(x509.DNSName)]
        addresses = [str(ip) for ip in extension.value.get_values_for_type(x509.IPAddress)]
    return dns, addresses, _common_name(cert)


def _common_name(cert: x509.Certificate) -> str | None:
    try:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def _has_san(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return True
    return True


def match_hostname(cert: x509.Certificate, host: str, *, common_name_fallback: bool) -> bool:
    """Whether ``cert`` is issued for ``host`` (a URL host: IDNA, lower case, IPv6 unbracketed)."""
    dns, addresses, common_name = certificate_names(cert)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return any(_same_address(address, text) for text in addresses)
    wanted = normalize_dns_name(host)
    if wanted is None:
        return False
    candidates = list(dns)
    if common_name_fallback and common_name is not None and not _has_san(cert):
        candidates.append(common_name)
    return any(dns_name_matches(pattern, wanted) for pattern in candidates)


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return address == ipaddress.ip_address(text)
    except ValueError:
        return False


def dns_name_matches(pattern_text: str, host: str) -> bool:
    """Whether a DNS name from a certificate (maybe a wildcard) names ``host`` (normalised)."""
    pattern = normalize_dns_name(pattern_text)
    if pattern is None:
        return False
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    label, _, host_rest = host.partition(".")
    return bool(label) and host_rest == rest
