"""Make untrusted text safe to show: names and URLs in logs and gemtext, bodies on a terminal.

:func:`printable` is for short text that must stay on one line (certificate
names, URLs, status lines); :func:`escape_for_terminal` and
:class:`TerminalText` for a text body that a person reads as it is, lines
and all, but that must not drive the terminal showing it.
"""

from __future__ import annotations

import codecs
import re
import shlex
import unicodedata

__all__ = ["TerminalText", "escape_for_terminal", "printable", "shell_word", "text_charset"]

# Format characters (Cf) cover the bidi controls (U+061C, U+200E, U+202A-U+202E,
# U+2066-U+2069), the invisible ones (U+00AD, U+200B-U+200D, U+2060-U+2064, U+FEFF)
# and tags; the Hangul fillers are letters that show as nothing.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_ASCII_SAFE = re.compile(r"\A[\x20-\x7e]*\Z")
# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties.txt) outside the categories
# above: combining marks and fillers that render as nothing.
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]"
)
_SHELL_SAFE = re.compile(r"\A[\x21-\x7e]*\Z")


def printable(text: str, limit: int = 200) -> str:
    """Escape control, format and unassigned characters (``\\xNN``) and cut to ``limit``.

    The result never contains CR, LF, ESC, bidi controls, invisible characters
    or others that could forge log lines, drive a terminal, or restructure gemtext.
    """
    if len(text) > limit:
        text = text[:limit] + "…"
    if _ASCII_SAFE.match(text):
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES or char in _BLANK_LETTERS:
            out.append(_escaped(char))
        else:
            out.append(char)
    return "".join(out)


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _hidden(char: str) -> bool:
    """Whether ``char`` shows as nothing, or as a space that is not one, in a command line."""
    category = unicodedata.category(char)
    return category in _UNSAFE_CATEGORIES or category == "Zs" or _IGNORABLE.match(char) is not None


def shell_word(text: str, *, url: bool = False) -> str:
    """``text`` as one word of a suggested shell command, with nothing hidden in it.

    A person copies a suggested command from the screen, so what it shows must
    be all it contains: every character that is invisible or that a terminal
    shows as something else (controls, bidi controls such as U+061C, U+200B,
    U+2060, U+00AD, non-ASCII spaces, default-ignorable code points) is made
    visible.  In a ``url`` it is percent-encoded as UTF-8, which names the
    same resource, so the command still works; elsewhere it becomes a
    ``\\uXXXX`` escape, so the command fails rather than do something unseen.
    The word is then quoted for a POSIX shell.
    """
    if not _SHELL_SAFE.match(text):
        out = []
        for char in text:
            if char == " " and url:
                out.append("%20")
            elif char != " " and _hidden(char):
                out.append(
                    "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
                    if url
                    else _escaped(char)
                )
            else:
                out.append(char)
        text = "".join(out)
    return shlex.quote(text)


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
    server: one that is not a text encoding (see :func:`text_charset`) is
    read as UTF-8, and :attr:`fallback` says so.
    """

    def __init__(self, charset: str) -> None:
        codec = text_charset(charset)
        self.fallback = codec is None
        """True when ``charset`` was not a text encoding and UTF-8 is used instead."""
        self._decoder = codecs.getincrementaldecoder(codec or "utf-8")(errors="replace")
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
# Python codecs that turn bytes into text but are not character sets of any
# standard: they would show escapes decoded, or refuse most input.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined", "mbcs", "oem"}
)


def text_charset(charset: str) -> str | None:
    """The codec for a ``charset=`` parameter if it names a text encoding, else None.

    Refused: unknown names, codecs Python marks as not text encodings
    (bytes-to-bytes such as ``hex``, ``zlib`` and ``base64``, or ``rot13``),
    Python-only codecs (``unicode_escape``, ``idna``, ``punycode``) and any
    codec that cannot decode every byte with ``errors="replace"``.
    """
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    try:
        _EVERY_BYTE.decode(info.name, "replace")
    except (LookupError, UnicodeError):
        return None
    return info.name
