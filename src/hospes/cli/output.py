"""How the commands print results for people (lines, tables) and for scripts (``--json``).

Results go to stdout; errors go through :func:`hospes.cli.errors.fail`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import unicodedata
from collections.abc import Sequence

from ..gemini.escape import printable
from ..store import Ban

__all__ = ["ban_json", "emit_json", "moment", "say", "table", "width"]


def say(message: str) -> int:
    """Print a one-line result for people; returns 0 (the exit status of a success)."""
    print(message)
    return 0


def moment(value: dt.datetime | None, empty: str = "-") -> str:
    """A time for tables: minutes, UTC; ``empty`` for no time."""
    return empty if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, limit: int = 80) -> str:
    """Left-aligned columns; every cell made printable (names and CNs come from clients).

    Columns are aligned on the width a terminal gives each character (two
    columns for wide East Asian characters, none for combining marks), not
    on the number of characters.  A cell longer than ``limit`` characters is
    cut (with ``…``); a table of the user's own data that must be shown whole
    (scopes) passes a larger one.
    """
    cells = [[printable(str(cell), limit) for cell in row] for row in rows]
    widths = [width(header) for header in headers]
    for row in cells:
        widths = [max(size, width(cell)) for size, cell in zip(widths, row, strict=True)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(
            cell + " " * (size - width(cell)) for cell, size in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal (for printable text: no controls)."""
    total = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def emit_json(value: object) -> None:
    """Print ``value`` as JSON (datetimes in ISO 8601)."""
    json.dump(value, sys.stdout, indent=2, default=_json_default, ensure_ascii=False)
    sys.stdout.write("\n")


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def ban_json(ban: Ban) -> dict[str, object]:
    """A ban as ``--json`` prints it (``hospes ban``, ``bans`` and ``accounts show``)."""
    return {
        "id": ban.id,
        "kind": ban.kind.value,
        "value": ban.value,
        "reason": ban.reason,
        "created": ban.created,
        "until": ban.until,
    }
