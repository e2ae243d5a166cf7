"""Files that nobody ever sees half-written: a temporary file beside the target, fsync, rename.

Keys, certificates, lists of scopes and ``hospes get -o`` bodies are written
this way, so that a crash, a full disk or a killed process leaves either the
old file or the new one, and never a stray temporary file after a failure
that Python saw.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

__all__ = ["UMASK", "atomic_writer", "write_atomically"]

UMASK: Final = None
"""``mode=UMASK``: create the file as ``open()`` would, 0o666 less the process umask."""

_ATTEMPTS = 100  # random temporary names tried before giving up (a clash is already unlikely)


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, mode: int | None = 0o644, exclusive: bool = False
) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` when the ``with`` block ends without error.

    The data goes to a temporary file in ``path``'s directory (which must
    exist), is fsynced, then published in one step.  On any exception,
    cancellation and ``KeyboardInterrupt`` included, the temporary file is
    removed and ``path`` is left as it was.

    ``mode`` is the file's permissions, exactly; :data:`UMASK` (``None``)
    lets the kernel apply the umask to 0o666 as for any new file, without
    touching the process-wide umask.  With ``exclusive`` the file is
    published with a hard link instead of a rename, which fails with
    :class:`FileExistsError` if ``path`` exists: of two processes creating
    the same file at once, exactly one succeeds.
    """
    fd, temporary = _create_temporary(path, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(fd, mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(
    path: Path, data: bytes, *, mode: int | None = 0o644, exclusive: bool = False
) -> None:
    """Write ``data`` to ``path`` all or nothing, creating missing parent directories.

    ``mode`` and ``exclusive`` are those of :func:`atomic_writer`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, mode=mode, exclusive=exclusive) as handle:
        handle.write(data)


def _create_temporary(path: Path, mode: int) -> tuple[int, Path]:
    """A new, empty, private-named file beside ``path``, created with ``mode`` less the umask.

    Not :func:`tempfile.mkstemp`: it always creates 0o600, and the only way to
    learn the umask to apply afterwards is to set it, for the whole process.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(_ATTEMPTS):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}"
        try:
            return os.open(temporary, flags, mode), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
