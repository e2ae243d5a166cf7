"""Make untrusted text safe to show: names and URLs in logs and gemtext, bodies on a terminal.

:func:`printable` is for short text that must stay on one line (certificate
names, URLs, status lines); :func:`escape_for_terminal` and
:class:`TerminalText` for a text body that a person reads as it is, lines
and all, but that must not drive the terminal showing it.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

__all__ = ["TerminalText", "escape_for_terminal", "printable"]

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


_TERMINAL_UNSAFE = {
    code: f"\\x{code:02x}"
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]
    if code not in (9, 10)
}


def escape_for_terminal(text: str) -> str:
    """Escape what could drive a terminal (C0 and C1 controls but tab and newline, DEL).

    A text body is the user's to read, so only what a terminal *executes* is
    escaped: ESC (colours, cursor moves, title and clipboard sequences), CSI,
    OSC, backspace and a carriage return (which overwrite what was shown).
    CRLF, a legal gemtext line ending, is shown as a plain newline.
    """
    return text.replace("\r\n", "\n").translate(_TERMINAL_UNSAFE)


class TerminalText:
    """Decodes a text body chunk by chunk and escapes it for a terminal.

    The result does not depend on where the chunks were cut: a character
    split across chunks is decoded whole, and a CR at the end of a chunk is
    held back until the next one tells whether it starts a CRLF.  Bytes that
    are invalid in ``charset`` become U+FFFD.  ``charset`` comes from the
    server: one Python cannot decode text with (unknown, or a codec such as
    ``hex`` or ``zlib`` that is not a text encoding) is read as UTF-8.
    """

    def __init__(self, charset: str) -> None:
        if not _usable_charset(charset):
            charset = "utf-8"
        self._decoder = codecs.getincrementaldecoder(charset)(errors="replace")
        self._pending_cr = False

    def feed(self, data: bytes, *, final: bool = False) -> str:
        """The escaped text of ``data`` that can be shown now; ``final`` flushes the rest."""
        try:
            text = self._decoder.decode(data, final=final)
        except UnicodeError:  # despite errors="replace": UTF-16 or -32 without a BOM
            self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            text = self._decoder.decode(data, final=final)
        if self._pending_cr:
            text = "\r" + text
        self._pending_cr = text.endswith("\r") and not final
        if self._pending_cr:
            text = text[:-1]
        return escape_for_terminal(text)


_EVERY_BYTE = bytes(range(256))


def _usable_charset(charset: str) -> bool:
    """Whether ``charset`` decodes any bytes to text with ``errors="replace"`` without raising.

    Rules out unknown names, bytes-to-bytes codecs (``LookupError``) and codecs
    that refuse ``replace`` or fail on some input anyway (``idna``, ``punycode``).
    """
    try:
        _EVERY_BYTE.decode(charset, "replace")
    except (LookupError, UnicodeError):
        return False
    return True
