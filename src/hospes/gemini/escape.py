"""Make untrusted text (certificate names, URLs) safe to print in logs, terminals and gemtext."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["printable"]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ASCII_SAFE = re.compile(r"\A[\x20-\x7e]*\Z")


def printable(text: str, limit: int = 200) -> str:
    """Escape control, format and unassigned characters (``\\xNN``) and cut to ``limit``.

    The result never contains CR, LF, ESC, bidi overrides or other characters
    that could forge log lines, drive a terminal, or restructure gemtext.
    """
    if len(text) > limit:
        text = text[:limit] + "…"
    if _ASCII_SAFE.match(text):
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
