"""The access log: one line per request, written in batches off the request path.

Format (one request per line, seven fields separated by single spaces)::

    2026-11-27T17:29:42.123Z 203.0.113.7:51234 SHA256:3f2a9b1c4d5e "gemini://ex.org/" 20 1432 1.8ms

1. time the request ended, UTC, milliseconds (``…Z``);
2. remote address and port (``2001:db8::1:51234`` for IPv6: the port follows the last colon);
3. the client certificate's fingerprint, ``-`` for none: ``SHA256:`` and 12 hex
   digits by default, all 64 with ``full_fingerprints`` (``access_log_fingerprint
   = "full"``);
4. the requested URL in double quotes: the normalised URL of a valid request, the
   raw request line (without CRLF) of an invalid one, ``-`` when none was read;
   escaped by :func:`quote` so that it can never end the field or the line;
5. the status, or what happened instead: ``20``, ``20+write_timeout`` (dropped
   after the header), ``request_timeout`` (dropped before a response), ``reset``;
6. body bytes sent;
7. duration from the request line to the close, ``1.8ms``.

Only field 4 comes from the client.  Lines are buffered and flushed every
``interval`` seconds and at shutdown, so a busy server makes one write per
batch rather than one per request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import unicodedata
from collections.abc import Iterator
from typing import TextIO

from ..gemini.fingerprint import short_fingerprint

__all__ = ["LINE", "MAX_TARGET", "AccessLog", "quote", "unquote"]

log = logging.getLogger("hospes.server")

ATOMIC_WRITE = 4096
"""PIPE_BUF on Linux: the largest write to a pipe that is never split."""

MAX_TARGET = 1024
"""Characters of a requested URL kept in a line (a request line is at most 1024 bytes)."""

LINE = re.compile(
    r'\A(?P<time>\S+) (?P<remote>\S+) (?P<fingerprint>\S+) "(?P<target>(?:[^"\\]|\\.)*)" '
    r"(?P<status>\S+) (?P<size>\d+) (?P<duration>\d+\.\d)ms\Z"
)
"""One access-log line (without its newline), field by field: what log readers should use."""

_PLAIN = re.compile(r"\A[\x20-\x7e]*\Z")
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ESCAPE = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8})|(.))", re.DOTALL)


def quote(text: str, limit: int = MAX_TARGET) -> str:
    """``text`` as field 4 writes it, without the quotes: one unambiguous line of printable text.

    ``\\`` becomes ``\\\\`` and ``"`` becomes ``\\"``; control, format, surrogate,
    private-use, unassigned and line/paragraph-separator characters become
    ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``; nothing else is changed.  Since every
    backslash in the result starts an escape, a literal ``\\x1b`` sent by a client
    (``\\\\x1b``) never reads as an escaped ESC, and a quote never ends the field
    early.  Text longer than ``limit`` characters is cut and ends in ``…``.
    """
    if len(text) > limit:
        text = text[:limit] + "…"
    if _PLAIN.match(text) and "\\" not in text and '"' not in text:
        return text  # the usual URL: nothing to escape, one regular-expression match
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif unicodedata.category(char) in _UNSAFE_CATEGORIES:
            code = ord(char)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def unquote(text: str) -> str:
    """The text :func:`quote` escaped (a cut text keeps its ``…``); for log readers and tests."""

    def one(match: re.Match[str]) -> str:
        code = match[1] or match[2] or match[3]
        return chr(int(code, 16)) if code else match[4]

    return _ESCAPE.sub(one, text)


class AccessLog:
    """Formats and buffers access lines for a text stream (stdout by default).

    ``full_fingerprints`` writes whole certificate fingerprints instead of their
    first 12 hex digits (what ``access_log_fingerprint = "full"`` sets).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = 0.2,
        full_fingerprints: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.full_fingerprints = full_fingerprints
        self._lines: list[str] = []
        self._flusher: asyncio.TimerHandle | None = None
        self._second = -1
        self._last_error = -60.0
        self._stamp = ""

    def record(
        self,
        *,
        remote: str,
        fingerprint: str | None,
        target: str,
        status: int | str,
        size: int,
        seconds: float,
    ) -> None:
        """Queue one access line; ``target`` is the URL or request line as received (unescaped)."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if fingerprint is None:
            who = "-"
        else:
            who = fingerprint if self.full_fingerprints else short_fingerprint(fingerprint)
        self._lines.append(
            f'{self._stamp}.{int(now % 1 * 1000):03d}Z {remote} {who} "{quote(target)}" '
            f"{status} {size} {seconds * 1000:.1f}ms\n"
        )
        if self._flusher is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flusher = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Write every queued line now."""
        self._flusher = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            for chunk in _chunks(lines):
                self.stream.write(chunk)
                self.stream.flush()
        except (OSError, ValueError) as exc:
            # A full disk must not stop the server: say so (once a minute), drop the lines.
            # Not a count of them: the stream may still hold some, written once there is
            # space (the rest of a line the disk cut, so that it ends whole).
            now = time.monotonic()
            if now - self._last_error >= 60:
                self._last_error = now
                log.error(
                    "cannot write the access log (%s); lines are lost until it can be written", exc
                )


def _chunks(lines: list[str], limit: int = ATOMIC_WRITE) -> Iterator[str]:
    """Whole lines joined into writes of at most ``limit`` bytes (one line may exceed it).

    Writes up to PIPE_BUF are atomic on a pipe: several workers sharing one
    stdout never interleave parts of their lines.
    """
    chunk: list[str] = []
    size = 0
    for line in lines:
        length = len(line) if line.isascii() else len(line.encode("utf-8"))
        if chunk and size + length > limit:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:
        yield "".join(chunk)
