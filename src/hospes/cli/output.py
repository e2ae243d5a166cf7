"""How the commands print results for people (lines, tables) and for scripts (``--json``).

Results go to stdout; errors go through :func:`hospes.cli.errors.fail`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence

from ..gemini.escape import printable
from ..store import Ban

__all__ = ["ban_json", "emit_json", "moment", "say", "table"]


def say(message: str) -> int:
    """Print a one-line result for people; returns 0 (the exit status of a success)."""
    print(message)
    return 0


def moment(value: dt.datetime | None, empty: str = "-") -> str:
    """A time for tables: minutes, UTC; ``empty`` for no time."""
    return empty if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns; every cell made printable (names and CNs come from clients)."""
    cells = [[printable(str(cell), 80) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


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
