"""Gemtext for the admin pages, written so that nothing a client or an admin typed can bend it.

Names, common names, reasons, list names and the meta of refused requests
come from other people.  Every such value goes through :func:`shown`
(:func:`~hospes.gemini.escape.printable`: no CR, LF, escape sequence, bidi
control or invisible character survives, so it stays on its line) and is
written after a fixed start of line (``=> URL``, ``* ``, ``## ``, a label in
a preformatted block): no value can start a line, so none becomes a link, a
heading, a list item or a preformat toggle.  URLs are built from values
that were checked (ids, hex digits) or percent-encoded (:func:`path`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from ..gemini.escape import printable
from ..gemini.fingerprint import PREFIX, short_fingerprint
from ..gemini.url import quote_path

__all__ = [
    "changed_by",
    "digits",
    "link",
    "moment",
    "path",
    "preformatted",
    "short",
    "shown",
    "span",
]


def shown(text: str, limit: int = 64) -> str:
    """Untrusted text as a page may show it: one line, escaped, at most ``limit`` characters."""
    return printable(text, limit)


def short(fingerprint: str) -> str:
    """A fingerprint as the pages name it in passing: ``SHA256:`` and 12 hex digits."""
    return short_fingerprint(fingerprint) + "…"


def changed_by(who: str) -> str:
    """Who made a change, from the audit log: a fingerprint shortened, ``cli:USER`` as it is.

    Escaped: a change made with the ``hospes`` command is recorded under the
    name its environment gave (``sudo from NAME``).
    """
    return shown(short(who) if who.startswith(PREFIX) else who, 100)


def digits(fingerprint: str) -> str:
    """A canonical fingerprint's hex digits: how URLs of the pages carry it."""
    return fingerprint.removeprefix(PREFIX)


def path(*segments: str) -> str:
    """A path of the pages, each segment percent-encoded (``/`` within one included)."""
    return "/".join(quote_path(segment).replace("/", "%2F") for segment in segments)


def link(url: str, label: str) -> str:
    """A link line; ``url`` is built by the pages, ``label`` may hold untrusted text (escaped)."""
    return f"=> {url} {shown(label, 160)}"


def moment(value: dt.datetime | float | None, empty: str = "never") -> str:
    """A time to the second, in UTC; ``value`` a datetime or seconds since the epoch."""
    if value is None:
        return empty
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def span(seconds: float) -> str:
    """A length of time as people say it: ``42 s``, ``5 min``, ``3 h 20 min``, ``2 d 4 h``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def preformatted(rows: Iterable[Sequence[str]], alt: str = "") -> list[str]:
    """Label and value rows as an aligned preformatted block (values escaped).

    A row's first cell is a label of the pages; the others may be untrusted.
    """
    cells = [[row[0], *(shown(str(cell), 100) for cell in row[1:])] for row in rows]
    width = max((len(row[0]) for row in cells), default=0)
    lines = [f"```{alt}"]
    lines += [f"{row[0]:<{width}}  {'  '.join(row[1:])}".rstrip() for row in cells]
    lines.append("```")
    return lines
