"""Certificate and key fingerprints: SHA-256, written ``SHA256:<64 lowercase hex>``.

Anywhere a person types a fingerprint (config, CLI) :func:`parse_fingerprint`
also accepts the forms other Gemini software prints: upper case, bare hex,
colon-separated hex (OpenSSL) and ``sha256$hex``.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["PREFIX", "fingerprint", "parse_fingerprint", "short_fingerprint"]

PREFIX = "SHA256:"
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_ALGORITHM = re.compile(r"\A(?:sha-?256)[:$]", re.IGNORECASE)


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


def short_fingerprint(value: str, digits: int = 12) -> str:
    """A shortened fingerprint for logs and tables: ``SHA256:`` and the first hex digits."""
    return value[: len(PREFIX) + digits]
