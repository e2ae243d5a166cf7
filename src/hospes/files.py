"""Files that nobody ever sees half-written: a temporary file beside the target, fsync, rename.

Keys, certificates and lists of scopes are written this way, so that a crash,
a full disk or a killed process leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(
    path: Path, data: bytes, *, mode: int = 0o644, exclusive: bool = False
) -> None:
    """Write ``data`` to ``path`` with permissions ``mode``, all or nothing.

    With ``exclusive`` the file is published with a hard link instead of a
    rename, which fails with :class:`FileExistsError` if ``path`` exists: of two
    processes creating the same file at once, exactly one succeeds.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
