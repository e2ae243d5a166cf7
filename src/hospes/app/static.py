"""Static files under a root directory, served safely.

A request path maps to a file below the root and nowhere else: the path is
already canonical (no dot segments) when it gets here, hidden names (a leading
dot) are refused, and the resolved real path must still be inside the real
root, so no ``..``, percent-encoded trick or symlink reaches outside.
Directories serve their ``index.gmi``; a directory requested without its
trailing slash is redirected (31) so relative links in it work.
"""

from __future__ import annotations

import io
import mimetypes
import os
import stat
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ..gemini.url import quote_path
from .request import Request
from .response import GEMTEXT, Response

__all__ = ["FileBody", "StaticFiles", "guess_mime"]

CHUNK = 64 * 1024
SMALL_FILE = 256 * 1024
_NOT_FOUND = "not found"

_MIME = mimetypes.MimeTypes(filenames=())
for _extension in (".gmi", ".gemini"):
    _MIME.add_type(GEMTEXT, _extension)
_MIME.add_type("text/markdown", ".md")


def guess_mime(name: str) -> str:
    """The MIME type of a file name; gemtext for ``.gmi``/``.gemini``, octet-stream if unknown."""
    mime, encoding = _MIME.guess_type(name, strict=False)
    if mime is None or encoding is not None:
        return "application/octet-stream"
    return mime


@dataclass(frozen=True, slots=True)
class _Cached:
    """A small file's content, valid while its real path still stats the same."""

    real: str
    signature: tuple[int, int, int, int]
    body: bytes
    mime: str


def _signature(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


class StaticFiles:
    """A handler serving the files of ``root``.

    Small files are kept in memory (at most ``cache_bytes`` in all) and
    revalidated on every request with one ``stat`` of their resolved path: an
    edited, replaced or removed file is never served stale, and a changed file
    goes through the full resolution (and its checks) again.
    """

    uses_accounts = False
    """Files are the same for everyone: the server need not look up the visitor's account."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        index: str = "index.gmi",
        cache_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.root = Path(root)
        self.real_root = os.path.realpath(self.root)
        if not os.path.isdir(self.real_root):
            raise NotADirectoryError(f"capsule root {self.root} is not a directory")
        self.index = index
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cached_bytes = 0

    def _inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root + os.sep)

    def _resolve(self, relative: str) -> str | None:
        """The real path of ``relative`` if it is a servable name inside the root."""
        parts = [part for part in relative.split("/") if part]
        for part in parts:
            if part.startswith(".") or "\\" in part or len(part.encode("utf-8")) > 255:
                return None
        real = os.path.realpath(os.path.join(self.real_root, *parts))
        return real if self._inside(real) else None

    async def __call__(self, request: Request) -> Response:
        """Serve the file (or directory index) at the request's relative path."""
        relative = request.relative_path
        cached = self._cache.get(relative)
        if cached is not None:
            try:
                fresh = _signature(os.stat(cached.real)) == cached.signature
            except OSError:
                fresh = False
            if fresh:
                self._cache.move_to_end(relative)
                return Response.success(cached.body, cached.mime)
            self._forget(relative)
        real = self._resolve(relative)
        if real is None:
            return Response.not_found(_NOT_FOUND)
        try:
            info = os.stat(real)
        except (OSError, ValueError):
            return Response.not_found(_NOT_FOUND)
        if stat.S_ISDIR(info.st_mode):
            if not relative.endswith("/"):
                return Response.redirect(quote_path(request.path + "/"), permanent=True)
            real = os.path.realpath(os.path.join(real, self.index))
            if not self._inside(real):
                return Response.not_found(_NOT_FOUND)
        elif relative.endswith("/"):
            return Response.not_found(_NOT_FOUND)
        return self._open(relative, real)

    def _open(self, relative: str, real: str) -> Response:
        try:
            handle = io.FileIO(real, "rb", opener=_open_no_follow)
        except OSError:
            return Response.not_found(_NOT_FOUND)
        try:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                handle.close()
                return Response.not_found(_NOT_FOUND)
            mime = guess_mime(real)
            if info.st_size > SMALL_FILE:
                return Response.success(FileBody(handle), mime)
            with handle:
                body = handle.readall()
        except OSError:
            handle.close()
            return Response.not_found(_NOT_FOUND)
        if len(body) == info.st_size:
            self._remember(relative, _Cached(real, _signature(info), body, mime))
        return Response.success(body, mime)

    def _remember(self, relative: str, entry: _Cached) -> None:
        if len(entry.body) > self.cache_bytes:
            return
        self._cache[relative] = entry
        self._cached_bytes += len(entry.body)
        while self._cached_bytes > self.cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= len(evicted.body)

    def _forget(self, relative: str) -> None:
        entry = self._cache.pop(relative, None)
        if entry is not None:
            self._cached_bytes -= len(entry.body)


def _open_no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


class FileBody:
    """A large file sent chunk by chunk; the server closes it however the response ends."""

    __slots__ = ("_handle",)

    def __init__(self, handle: io.FileIO) -> None:
        self._handle = handle

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = self._handle.read(CHUNK)
        if not chunk:
            self._handle.close()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Close the file (idempotent)."""
        self._handle.close()
