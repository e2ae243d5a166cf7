"""Names below a gateway's directory, under the rules of static files.

A request path reaches a file below the directory and nowhere else: hidden
names (a leading dot), backslashes and names longer than a file system allows
are refused, and the resolved real path (symlinks followed) must still be
inside the directory's real path.  Scripts are looked up, and uploads
written, only through these functions.
"""

from __future__ import annotations

import os
import stat

__all__ = ["find_script", "inside", "segments"]

_NAME_MAX = 255


def segments(relative: str) -> list[str] | None:
    """The names of a canonical relative path, or None if one of them may not be served."""
    parts = [part for part in relative.split("/") if part]
    for part in parts:
        if part.startswith(".") or "\\" in part or len(part.encode("utf-8")) > _NAME_MAX:
            return None
    return parts


def inside(real: str, real_root: str) -> bool:
    """Whether the real path ``real`` is ``real_root`` or below it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def find_script(real_root: str, parts: list[str]) -> tuple[str, int] | None:
    """The script a path names: its real path and how many of ``parts`` name it.

    The script is the first of ``root/a``, ``root/a/b``, ... that is an
    executable regular file (through directories, symlinks that stay inside
    the root followed); the parts after it are the script's ``PATH_INFO``.
    None when no such file is inside the root.
    """
    current = real_root
    for index, part in enumerate(parts):
        real = os.path.realpath(os.path.join(current, part))
        if not inside(real, real_root):
            return None
        try:
            info = os.stat(real)
        except (OSError, ValueError):
            return None
        if stat.S_ISDIR(info.st_mode):
            current = real
            continue
        if stat.S_ISREG(info.st_mode) and os.access(real, os.X_OK):
            return real, index + 1
        return None
    return None
