"""From a request path to a file under a root directory, and who may have it.

A request path names a file below a root and nowhere else: hidden names (a
leading dot) are refused, and the real path (every symlink resolved) must
still be inside the real root.  A symlink that stays inside may point
anywhere in the root, including into a directory that an access rule
protects (``members-area -> private``, ``latest.gmi -> private/secret.gmi``,
``loop -> .``); so a file is served only if the rules for the path it is
*really* at allow the visitor too (:func:`authorise`), on top of the rules
for the path that was requested (which the dispatcher checked).

Static files use this; so will every handler that maps request paths to
files (CGI scripts, Titan uploads): resolve with :meth:`Root.resolve`, then
ask :func:`authorise` for :attr:`Resolved.path` before touching the file.
Resolution touches the file system (``realpath``, ``stat``): call it off the
event loop.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .request import Request
from .response import Response

__all__ = ["Resolved", "Root", "authorise"]

MAX_NAME_BYTES = 255
"""The longest file name (in bytes of UTF-8) common file systems allow."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A request path resolved to a file system object inside a root."""

    real: str
    """The real path: absolute, without symlinks."""
    path: str
    """Where ``real`` is below the root, as a URL path relative to the root (``/private/x``)."""
    info: os.stat_result
    """``stat`` of ``real`` at resolution (a directory, a regular file, or anything else)."""

    @property
    def is_dir(self) -> bool:
        """Whether it is a directory."""
        return stat.S_ISDIR(self.info.st_mode)


def _servable(part: str) -> bool:
    """Whether a path segment may name a file: not hidden, no backslash, not too long."""
    return (
        not part.startswith(".")
        and "\\" not in part
        and len(part.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
    )


class Root:
    """A directory whose files requests may name; resolves request paths safely."""

    __slots__ = ("real", "root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.real = os.path.realpath(self.root)
        """The root's own real path."""
        if not os.path.isdir(self.real):
            raise NotADirectoryError(f"capsule root {self.root} is not a directory")

    def relative(self, real: str) -> str | None:
        """``real`` as a URL path relative to the root (``/`` for the root), None if outside."""
        if real == self.real:
            return "/"
        if not real.startswith(self.real + os.sep):
            return None
        parts = real[len(self.real) + 1 :].split(os.sep)
        if not all(_servable(part) for part in parts):
            return None
        return "/" + "/".join(parts)

    def resolve(self, relative: str) -> Resolved | None:
        """The file ``relative`` (a canonical URL path below the root) names, or None.

        None when a requested segment is hidden or unusable, when the real path
        is outside the root or has a hidden segment itself (a symlink to
        ``.git/config`` serves nothing), or when nothing is there.  Blocking:
        run it off the event loop.
        """
        parts = [part for part in relative.split("/") if part]
        if not all(_servable(part) for part in parts):
            return None
        try:
            real = os.path.realpath(os.path.join(self.real, *parts))
            path = self.relative(real)
            if path is None:
                return None
            return Resolved(real, path, os.stat(real))
        except (OSError, ValueError):
            return None

    def child(self, directory: Resolved, name: str) -> Resolved | None:
        """The file ``name`` (an index file) inside a resolved directory, resolved the same way."""
        return self.resolve(directory.path.rstrip("/") + "/" + name)


async def authorise(request: Request, path: str) -> Response | None:
    """The 6x ``request`` gets for the resource at ``path``, None if it may have it.

    ``path`` is a path of the request's server (the handler's mount point
    included), typically where a resolved file really is.  The dispatcher
    already decided for ``request.path``; this applies the rules for
    ``path`` as well, with the same 60 / 62 / 61 order.  Without a
    dispatcher (a handler called directly), nothing more is checked.
    """
    if path == request.path:
        return None
    return await request.authorise(path)
