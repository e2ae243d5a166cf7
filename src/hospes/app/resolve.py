"""From a request path to a file under a root directory, and who may have it.

A request path names a file below a root and nowhere else: hidden names (a
leading dot) are refused, and the real path (every symlink resolved) must
still be inside the real root.  A symlink that stays inside may point
anywhere in the root, including into a directory that an access rule
protects (``members-area -> private``, ``latest.gmi -> private/secret.gmi``,
``loop -> .``); so a file is served only if the rules for the path it is
*really* at allow the visitor too (:func:`authorise`), on top of the rules
for the path that was requested (which the dispatcher checked).

Every handler that maps request paths to files goes through here, so one
rule holds for all of them: static files resolve with :meth:`Root.resolve`,
CGI finds its script with :meth:`Root.executable`, a Titan upload its
target with :meth:`Root.target`; each then asks :func:`authorise` for the
path where the file really is before touching it (before a script runs, or a
byte of an upload is read).  Resolution touches the file system
(``realpath``, ``stat``): call it off the event loop.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .request import Request
from .response import Response

__all__ = ["Executable", "Resolved", "Root", "Target", "authorise", "names"]

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


@dataclass(frozen=True, slots=True)
class Executable:
    """An executable file a request path leads to (a CGI script), and the rest of the path."""

    file: Resolved
    named: str
    """The requested segments that lead to it, as a path (``/tool`` for ``/tool/a/b``)."""
    rest: str
    """The requested segments after them (``/a/b``; empty for none), a trailing slash kept."""

    @property
    def path(self) -> str:
        """The request path where the file really is: :attr:`Resolved.path` and :attr:`rest`."""
        return self.file.path + self.rest


@dataclass(frozen=True, slots=True)
class Target:
    """Where a file that a request path names is (or would be) created: a directory and a name."""

    directory: Resolved
    """The file's directory, resolved: it exists, inside the root."""
    name: str

    @property
    def real(self) -> str:
        """The file's real path (the name itself may be a symlink, or nothing yet)."""
        return os.path.join(self.directory.real, self.name)

    @property
    def path(self) -> str:
        """Where the file is below the root, as a URL path relative to the root."""
        return self.directory.path.rstrip("/") + "/" + self.name


def _servable(part: str) -> bool:
    """Whether a path segment may name a file: not hidden, no backslash, not too long."""
    return (
        not part.startswith(".")
        and "\\" not in part
        and len(part.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
    )


def names(relative: str) -> list[str] | None:
    """The segments of a canonical URL path, None if one of them may not name a file."""
    parts = [part for part in relative.split("/") if part]
    return parts if all(_servable(part) for part in parts) else None


class Root:
    """A directory whose files requests may name; resolves request paths safely."""

    __slots__ = ("real", "root")

    def __init__(self, root: str | os.PathLike[str], *, what: str = "capsule root") -> None:
        """``what`` names the root in the error raised when it is not a directory."""
        self.root = Path(root)
        self.real = os.path.realpath(self.root)
        """The root's own real path."""
        if not os.path.isdir(self.real):
            raise NotADirectoryError(f"{what} {self.root} is not a directory")

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
        parts = names(relative)
        if parts is None:
            return None
        return self._at(os.path.join(self.real, *parts))

    def _at(self, path: str) -> Resolved | None:
        """``path`` (absolute, under the real root) resolved, if it really is inside the root."""
        try:
            real = os.path.realpath(path)
            relative = self.relative(real)
            if relative is None:
                return None
            return Resolved(real, relative, os.stat(real))
        except (OSError, ValueError):
            return None

    def executable(self, relative: str) -> Executable | None:
        """The first executable regular file along ``relative``: ``a``, then ``a/b``, and so on.

        Each step is resolved as :meth:`resolve` would (symlinks that stay
        inside the root followed, hidden names refused on both sides); a
        directory leads on, anything else ends the search.  None when no
        such file is inside the root.  Blocking: run it off the event loop.
        """
        parts = names(relative)
        if parts is None:
            return None
        current = self.real
        for count, part in enumerate(parts, 1):
            found = self._at(os.path.join(current, part))
            if found is None:
                return None
            if found.is_dir:
                current = found.real
                continue
            if not stat.S_ISREG(found.info.st_mode) or not os.access(found.real, os.X_OK):
                return None
            rest = "/" + "/".join(parts[count:]) if count < len(parts) else ""
            if relative.endswith("/"):
                rest += "/"
            return Executable(found, "/" + "/".join(parts[:count]), rest)
        return None

    def target(self, relative: str) -> Target | None:
        """Where a file at ``relative`` would be created: its directory resolved, and its name.

        None when a segment may not name a file, when ``relative`` names no
        file (``/``), or when its directory does not exist inside the root.
        Whatever the name itself is (nothing yet, a file, a symlink) is left
        to the caller.  Blocking: run it off the event loop.
        """
        parts = names(relative)
        if not parts:
            return None
        directory = self._at(os.path.join(self.real, *parts[:-1]))
        if directory is None or not directory.is_dir:
            return None
        return Target(directory, parts[-1])

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
