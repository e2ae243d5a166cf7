"""Link codes: the one-time codes that attach a second device's certificate to an account.

A code is 50 random bits in Crockford's base 32, grouped for reading; the store
keeps only its SHA-256 hash.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["CODE_ALPHABET", "CODE_LENGTH", "code_hash", "new_link_code", "normalize_code"]

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base 32: no I, L, O or U, so nothing reads as something else."""
CODE_LENGTH = 10
"""Characters of a link code: 50 bits."""
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_link_code() -> str:
    """A fresh link code, grouped for reading: ``7KX2M-Q9DFA``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalize_code(text: str) -> str | None:
    """A typed code in canonical form, or None if it cannot be one.

    Case, spaces and hyphens do not matter, and the letters people confuse
    with digits (O, I, L) are read as those digits.
    """
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(cleaned) != CODE_LENGTH or any(char not in CODE_ALPHABET for char in cleaned):
        return None
    return cleaned


def code_hash(code: str) -> bytes:
    """What the store keeps of a (canonical) code: a high-entropy secret needs no slow hash."""
    return hashlib.sha256(code.encode("ascii")).digest()
