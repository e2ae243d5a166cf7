"""Certificate and key fingerprints: SHA-256, written ``SHA256:<64 lowercase hex>``.

Anywhere a person types a fingerprint (config, CLI) :func:`parse_fingerprint`
also accepts the forms other Gemini software prints: upper case, bare hex,
colon-separated hex (OpenSSL) and ``sha256$hex``.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "MIN_PREFIX",
    "PREFIX",
    "fingerprint",
    "parse_fingerprint",
    "parse_fingerprint_prefix",
    "short_fingerprint",
]

PREFIX = "SHA256:"
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_ALGORITHM = re.compile(r"\A(?:sha-?256)[:$]", re.IGNORECASE)
_TYPED_PREFIX = re.compile(r"\A(?:sha-?256[:$])?([0-9a-f][0-9a-f:]*)\Z", re.IGNORECASE)
MIN_PREFIX = 12
"""Hex digits a typed fingerprint prefix needs (what the access log shows by default)."""


def fingerprint(data: bytes) -> str:
    """The canonical fingerprint of DER bytes (a certificate or a public key)."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def parse_fingerprint(text: str) -> str:
    """Return the canonical form of a typed fingerprint, or raise :class:`ValueError`.

    >>> parse_fingerprint("AB:" * 31 + "AB")[:12]
    'SHA256:ababa'
    """
    value = text.strip()
    prefix = _ALGORITHM.match(value)
    if prefix is not None:
        value = value[prefix.end() :]
    value = value.replace(":", "").lower()
    if not _HEX64.match(value):
        raise ValueError(
            f"not a SHA-256 fingerprint: {text!r} (expected SHA256: and 64 hex digits)"
        )
    return PREFIX + value


def parse_fingerprint_prefix(text: str, min_digits: int = MIN_PREFIX) -> str:
    """A typed fingerprint made canonical, or a prefix: ``SHA256:`` and ``min_digits`` to 63 hex.

    A prefix is written in any notation a whole fingerprint may be (upper case,
    colons, ``sha256$``).  Raises :class:`ValueError` for anything else.
    """
    try:
        return parse_fingerprint(text)
    except ValueError:
        pass
    match = _TYPED_PREFIX.match(text.strip())
    digits = "" if match is None else match[1].replace(":", "").lower()
    if min_digits <= len(digits) < 64:
        return PREFIX + digits
    raise ValueError(
        f"not a SHA-256 fingerprint: {text!r} (expected SHA256: and 64 hex digits, "
        f"or the first {min_digits} or more)"
    )


def short_fingerprint(value: str, digits: int = 12) -> str:
    """A shortened fingerprint for logs and tables: ``SHA256:`` and the first hex digits."""
    return value[: len(PREFIX) + digits]
