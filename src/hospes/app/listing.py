"""Generated directory listings: what a directory holds, as gemtext that names cannot bend.

File names are the one part of a listing nobody vetted: a name may hold a
newline, ``=>``, ``#``, `````` ``` ``````, a bidi override or bytes that are not
UTF-8.  Every entry is therefore one link line that this module writes: the
URL percent-encoded and relative (``./name``, so ``a:b`` is not a scheme), the
label passed through :func:`~hospes.gemini.escape.printable` (no CR, LF or
format character survives), so no name can start a line of its own, let alone
a link, a heading or a preformatted block.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..gemini.escape import printable
from ..gemini.url import quote_path
from .resolve import Resolved

__all__ = ["MAX_ENTRIES", "ListingEntry", "human_size", "render_listing", "scan_directory"]

MAX_ENTRIES = 10_000
"""Entries a listing shows; the rest are counted."""


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """One file or directory of a listing."""

    name: str
    directory: bool
    size: int = 0
    """In bytes (0 for a directory)."""
    elsewhere: str | None = None
    """Where a symlink leads (below the root) when not to the entry's own path: the access
    rules of that path decide whether the entry is shown."""


def scan_directory(
    directory: Resolved, resolve: Callable[[str], Resolved | None]
) -> list[ListingEntry]:
    """The entries of ``directory`` a visitor can open, sorted by name.

    ``resolve`` resolves a path below the root as a request for it would be,
    or gives None when the server would not serve it (hidden, outside the
    root): a listing shows nothing the server refuses.  Names that are not
    valid UTF-8 cannot be requested, and only regular files and directories
    can be served, so neither is shown.  Blocks on the file system: call it
    off the event loop.
    """
    base = directory.path.rstrip("/")
    entries = []
    with os.scandir(directory.real) as found:
        for item in found:
            name = item.name
            try:
                name.encode("utf-8")  # undecodable bytes come back as lone surrogates
            except UnicodeEncodeError:
                continue
            natural = f"{base}/{name}"
            resolved = resolve(natural)
            if resolved is None:
                continue
            elsewhere = None if resolved.path == natural else resolved.path
            if resolved.is_dir:
                entries.append(ListingEntry(name, directory=True, elsewhere=elsewhere))
            elif stat.S_ISREG(resolved.info.st_mode):
                size = resolved.info.st_size
                entries.append(ListingEntry(name, directory=False, size=size, elsewhere=elsewhere))
    entries.sort(key=lambda entry: entry.name)
    return entries


def human_size(size: int) -> str:
    """``size`` bytes as people read it: ``512 B``, ``1.5 KiB``, ``12 MiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def render_listing(path: str, entries: Sequence[ListingEntry], *, parent: bool = True) -> str:
    """The gemtext listing of the directory at ``path`` (decoded): a heading, then one link a line.

    ``parent`` adds a link to the directory above.
    """
    lines = [f"# {printable(path, 255)}", ""]
    if parent:
        lines.append("=> ../ ../")
    for entry in entries[:MAX_ENTRIES]:
        slash = "/" if entry.directory else ""
        size = "" if entry.directory else f"  ({human_size(entry.size)})"
        lines.append(
            f"=> ./{quote_path(entry.name)}{slash} {printable(entry.name, 255)}{slash}{size}"
        )
    if len(entries) > MAX_ENTRIES:
        lines.append(f"and {len(entries) - MAX_ENTRIES} more, not shown")
    if not entries:
        lines.append("This directory is empty.")
    return "\n".join(lines) + "\n"
