"""Static files under a root directory, served safely and without blocking the server.

A request path maps to a file below the root and nowhere else
(:class:`~hospes.app.resolve.Root`): the path is already canonical (no dot
segments) when it gets here, hidden names (a leading dot) are refused, and
the resolved real path must still be inside the real root, so no ``..``,
percent-encoded trick or symlink reaches outside.  A symlink inside the root
is followed, but the access rules of the path it leads to apply too
(:func:`~hospes.app.resolve.authorise`).  Directories serve their
``index.gmi``; a directory requested without its trailing slash is
redirected (31) so relative links in it work.  Only regular files are
served: a FIFO, socket or device is ``51`` at once, never opened for I/O that
could wait forever.

The event loop never waits for the disk, except for one ``stat`` per request
for a file cached in memory (see :class:`StaticFiles`): finding, opening and
reading a file runs on the loop's default thread pool, and a large file is
read there chunk by chunk.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..gemini.url import quote_path
from .request import Request
from .resolve import Root, authorise
from .response import GEMTEXT, Response

__all__ = ["FileBody", "StaticFiles", "guess_mime"]

CHUNK = 64 * 1024
SMALL_FILE = 256 * 1024
_NOT_FOUND = "not found"
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
"""Non-blocking, so a FIFO swapped in after the ``stat`` cannot hang the open."""

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
    elsewhere: str | None
    """Where the file really is (below the root) when that is not the path requested
    (a symlink): its access rules are checked on every hit.  None otherwise."""


def _signature(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


@dataclass(slots=True)
class _Found:
    """A file found and opened (or read) off the event loop."""

    real: str
    info: os.stat_result
    mime: str
    elsewhere: str | None
    body: bytes | None = None
    """The content of a small file (read whole), None for a large one (``handle`` is open)."""
    handle: int = -1

    def close(self) -> None:
        """Close the large file's descriptor when it is not going to be sent."""
        if self.handle >= 0:
            os.close(self.handle)
            self.handle = -1


class StaticFiles:
    """A handler serving the files of ``root``.

    Small files are kept in memory (at most ``cache_bytes`` in all) and
    revalidated on every request with one ``stat`` of their resolved path: an
    edited, replaced or removed file is never served stale, and a changed file
    goes through the full resolution (and its checks) again.  That ``stat`` is
    the one file system call made on the event loop, on purpose: a thread
    round trip would cost more than the ``stat`` of a file the kernel has just
    served; everything else (resolution, open, reads) runs on the loop's
    thread pool.
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
        self.files = Root(root)
        self.root = self.files.root
        self.real_root = self.files.real
        self.index = index
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cached_bytes = 0

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
                if cached.elsewhere is not None:
                    denied = await authorise(request, request.base + cached.elsewhere)
                    if denied is not None:
                        return denied
                self._cache.move_to_end(relative)
                return Response.success(cached.body, cached.mime)
            self._forget(relative)
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self._find, relative, request.path)
        if isinstance(found, Response):
            return found
        if found.elsewhere is not None:
            try:
                denied = await authorise(request, request.base + found.elsewhere)
            except BaseException:
                found.close()
                raise
            if denied is not None:
                found.close()
                return denied
        if found.body is None:
            return Response.success(FileBody(found.handle, loop), found.mime)
        if len(found.body) == found.info.st_size:
            self._remember(
                relative,
                _Cached(
                    found.real, _signature(found.info), found.body, found.mime, found.elsewhere
                ),
            )
        return Response.success(found.body, found.mime)

    def _find(self, relative: str, path: str) -> _Found | Response:
        """Resolve, check, open and (if small) read the file; blocking, so run in a thread."""
        resolved = self.files.resolve(relative)
        if resolved is None:
            return Response.not_found(_NOT_FOUND)
        if resolved.is_dir:
            if not relative.endswith("/"):
                return Response.redirect(quote_path(path + "/"), permanent=True)
            resolved = self.files.child(resolved, self.index)
            if resolved is None:
                return Response.not_found(_NOT_FOUND)
            natural = relative + self.index
        elif relative.endswith("/"):
            return Response.not_found(_NOT_FOUND)
        else:
            natural = relative
        if not stat.S_ISREG(resolved.info.st_mode):
            return Response.not_found(_NOT_FOUND)
        elsewhere = None if resolved.path == natural else resolved.path
        return _read(resolved.real, guess_mime(resolved.real), elsewhere)

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


def _read(real: str, mime: str, elsewhere: str | None) -> _Found | Response:
    """Open ``real`` without following a symlink or waiting, and read it if it is small.

    What was checked before (by ``stat``) may have been swapped since: the
    type is checked again on the open descriptor.
    """
    try:
        handle = os.open(real, _OPEN_FLAGS)
    except OSError:
        return Response.not_found(_NOT_FOUND)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            body = None
        elif info.st_size > SMALL_FILE:
            return _Found(real, info, mime, elsewhere, handle=handle)
        else:
            with io.FileIO(handle, "rb", closefd=False) as file:
                body = file.readall()
    except OSError:
        body = None
    os.close(handle)
    if body is None:
        return Response.not_found(_NOT_FOUND)
    return _Found(real, info, mime, elsewhere, body=body)


class FileBody:
    """A large file sent chunk by chunk, each read on the loop's thread pool.

    The server closes it however the response ends.  A read may still be
    running in its thread when the response is cancelled: the descriptor is
    closed only after it (a lock), never under a running read, whose number
    could by then belong to another file or socket.
    """

    __slots__ = ("_handle", "_lock", "_loop")

    def __init__(self, handle: int, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = handle
        self._loop = loop
        self._lock = threading.Lock()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._loop.run_in_executor(None, self._read)
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    def _read(self) -> bytes:
        with self._lock:
            return b"" if self._handle < 0 else os.read(self._handle, CHUNK)

    def _close(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, -1
            if handle >= 0:
                os.close(handle)

    async def aclose(self) -> None:
        """Close the file (idempotent), after a read still running in its thread."""
        if self._lock.acquire(blocking=False):
            try:
                handle, self._handle = self._handle, -1
                if handle >= 0:
                    os.close(handle)
            finally:
                self._lock.release()
        else:
            self._loop.run_in_executor(None, self._close)
