"""Static files under a root directory, served safely and without blocking the server.

A request path maps to a file below the root and nowhere else
(:class:`~hospes.app.resolve.Root`): the path is already canonical (no dot
segments) when it gets here, hidden names (a leading dot) are refused, and
the resolved real path must still be inside the real root, so no ``..``,
percent-encoded trick or symlink reaches outside.  A symlink inside the root
is followed, but the access rules of the path it leads to apply too
(:func:`~hospes.app.resolve.authorise`).  Directories serve their
``index.gmi`` (or, with ``listing``, a generated listing when they have
none); a directory requested without its trailing slash is redirected (31)
so relative links in it work.  Only regular files are served: a FIFO, socket
or device is ``51`` at once, never opened for I/O that could wait forever.

The event loop never waits for the disk: finding, opening and reading a file
runs on the loop's default thread pool, and a large file is read there chunk
by chunk.  The one exception is the ``stat`` that revalidates a file cached in
memory, made on the loop only when the file and the root are on local file
systems (:mod:`~hospes.app.filesystems`), where it cannot wait for a server.

MIME types come from the extension: :data:`BUILTIN_TYPES` (data, not code),
with a capsule's own table over it; ``lang`` and ``charset`` become parameters
of the types they apply to.  All of it is worked out once, when the handler is
built, so a request costs one dictionary look-up.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..gemini.protocol import Status, check_header
from ..gemini.url import quote_path
from .filesystems import LocalDevices
from .listing import ListingEntry, render_listing, scan_directory
from .request import Request
from .resolve import Resolved, Root, authorise
from .response import GEMTEXT, Response

__all__ = [
    "BUILTIN_TYPES",
    "CAPSULE_TYPES",
    "UNKNOWN_TYPE",
    "FileBody",
    "StaticFiles",
    "guess_mime",
    "mime_types",
    "with_parameters",
]

CHUNK = 64 * 1024
SMALL_FILE = 256 * 1024
_NOT_FOUND = "not found"
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
"""Non-blocking, so a FIFO swapped in after the ``stat`` cannot hang the open."""

UNKNOWN_TYPE = "application/octet-stream"

CAPSULE_TYPES: Mapping[str, str] = MappingProxyType(
    {
        ".gmi": GEMTEXT,
        ".gemini": GEMTEXT,
        ".md": "text/markdown",
        ".markdown": "text/markdown",
        ".log": "text/plain",
        ".atom": "application/atom+xml",
        ".rss": "application/rss+xml",
    }
)
"""What capsules hold that the standard library's table lacks or gets wrong."""


def _builtin_types() -> dict[str, str]:
    # The standard library's own table, without the system's mime.types files: the same
    # types on every machine.  Its non-strict entries yield to the strict ones.
    standard = mimetypes.MimeTypes(filenames=())
    types = {**standard.types_map[False], **standard.types_map[True], **CAPSULE_TYPES}
    return {extension.lower(): mime for extension, mime in sorted(types.items())}


BUILTIN_TYPES: Mapping[str, str] = MappingProxyType(_builtin_types())
"""Extension (lower case, with its dot) → MIME type, before a capsule's ``[mime]`` table.

The standard library's table (without system files) and :data:`CAPSULE_TYPES`
over it; an unknown extension, or none, is ``application/octet-stream``.
"""


def mime_types(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """:data:`BUILTIN_TYPES` with ``overrides`` (extension → type) over it, lower-cased."""
    types = dict(BUILTIN_TYPES)
    for extension, mime in (overrides or {}).items():
        types[extension.lower()] = mime
    return types


def guess_mime(name: str, types: Mapping[str, str] = BUILTIN_TYPES) -> str:
    """The MIME type of a file name by its last extension; octet-stream if unknown.

    ``a.tar.gz`` is ``application/octet-stream`` unless ``types`` knows ``.gz``.
    """
    return types.get(os.path.splitext(name)[1].lower(), UNKNOWN_TYPE)


def with_parameters(mime: str, *, lang: str | None = None, charset: str | None = None) -> str:
    """``mime`` with ``; charset=`` (text types) and ``; lang=`` (gemtext) it does not have yet."""
    lowered = mime.lower()
    essence = lowered.partition(";")[0].strip()
    if charset and essence.startswith("text/") and "charset=" not in lowered:
        mime += f"; charset={charset}"
    if lang and essence == GEMTEXT and "lang=" not in lowered:
        mime += f"; lang={lang}"
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
    local: bool
    """The file and the root are on local file systems: revalidated on the event loop."""
    response: Response
    """The 20 serving ``body`` as ``mime``: responses are immutable, one serves every hit."""


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
    local: bool = False
    """On a local file system, as the root is (see :class:`_Cached`)."""

    def close(self) -> None:
        """Close the large file's descriptor when it is not going to be sent."""
        if self.handle >= 0:
            os.close(self.handle)
            self.handle = -1


@dataclass(frozen=True, slots=True)
class _Listing:
    """A directory without an index, read off the event loop, to be listed."""

    entries: list[ListingEntry]
    elsewhere: str | None
    """Where the directory really is when a symlink led to it (its rules apply), else None."""


class StaticFiles:
    """A handler serving the files of ``root``.

    Small files are kept in memory (at most ``cache_bytes`` in all) and
    revalidated on every request with one ``stat`` of their resolved path: an
    edited, replaced or removed file is never served stale, and a changed file
    goes through the full resolution (and its checks) again.  When the file
    and the root are on local file systems, that ``stat`` is made on the event
    loop, on purpose: a thread round trip would cost more than the ``stat`` of
    a file the kernel has just served.  On a network file system (NFS, SMB,
    FUSE: anything ``devices`` does not know as local) it runs on the loop's
    thread pool like everything else (resolution, open, reads), so a server
    that stops answering stalls those requests, never the loop.

    ``mime`` (extension → type) overrides :data:`BUILTIN_TYPES`; ``lang``
    (``en``, ``pt-BR``) is added to ``text/gemini`` responses, ``charset`` to
    every ``text/*`` one (for capsules whose text is not UTF-8); ``listing``
    answers a directory without an index with a generated gemtext listing.
    """

    uses_accounts = False
    """Files are the same for everyone: the server need not look up the visitor's account."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        index: str = "index.gmi",
        cache_bytes: int = 32 * 1024 * 1024,
        mime: Mapping[str, str] | None = None,
        lang: str | None = None,
        charset: str | None = None,
        listing: bool = False,
        devices: LocalDevices | None = None,
    ) -> None:
        self.files = Root(root)
        self.devices = devices or LocalDevices()
        self._root_local: bool | None = None
        self.root = self.files.root
        self.real_root = self.files.real
        self.index = index
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cached_bytes = 0
        self.listing = listing
        parameters = {"lang": lang, "charset": charset}
        self._types = {
            extension: with_parameters(kind, **parameters)
            for extension, kind in mime_types(mime).items()
        }
        """Extension → the meta of a 20 serving it, parameters included."""
        self._unknown = with_parameters(UNKNOWN_TYPE, **parameters)
        self._listing_type = with_parameters(GEMTEXT, lang=lang)
        """A listing is gemtext in UTF-8, whatever the capsule's charset."""
        # A bad type, lang or charset fails here, where it is given, not in every response.
        for meta in {*self._types.values(), self._unknown, self._listing_type}:
            check_header(Status.SUCCESS, meta)

    def mime_of(self, name: str) -> str:
        """The meta a 20 serving the file ``name`` has (its type, with lang and charset)."""
        return self._types.get(os.path.splitext(name)[1].lower(), self._unknown)

    async def __call__(self, request: Request) -> Response:
        """Serve the file (or directory index) at the request's relative path."""
        relative = request.relative_path
        cached = self._cache.get(relative)
        loop = asyncio.get_running_loop()
        if cached is not None:
            try:
                if cached.local:
                    info = os.stat(cached.real)
                else:
                    info = await loop.run_in_executor(None, os.stat, cached.real)
                fresh = _signature(info) == cached.signature
            except OSError:
                fresh = False
            if fresh:
                if cached.elsewhere is not None:
                    denied = await authorise(request, request.base + cached.elsewhere)
                    if denied is not None:
                        return denied
                if self._cache.get(relative) is cached:
                    self._cache.move_to_end(relative)
                return cached.response
            if self._cache.get(relative) is cached:
                self._forget(relative)
        found = await loop.run_in_executor(None, self._find, relative, request.path)
        if isinstance(found, Response):
            return found
        if isinstance(found, _Listing):
            return await self._list(request, found)
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
        response = Response.success(found.body, found.mime)
        if len(found.body) == found.info.st_size:
            signature = _signature(found.info)
            self._remember(
                relative,
                _Cached(
                    found.real,
                    signature,
                    found.body,
                    found.mime,
                    found.elsewhere,
                    found.local,
                    response,
                ),
            )
        return response

    def _find(self, relative: str, path: str) -> _Found | _Listing | Response:
        """Resolve, check, open and (if small) read the file; blocking, so run in a thread."""
        resolved = self.files.resolve(relative)
        if resolved is None:
            return Response.not_found(_NOT_FOUND)
        if resolved.is_dir:
            if not relative.endswith("/"):
                return Response.redirect(quote_path(path + "/"), permanent=True)
            directory, resolved = resolved, self.files.child(resolved, self.index)
            if self.listing and (resolved is None or not stat.S_ISREG(resolved.info.st_mode)):
                return self._scan(directory, relative)
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
        found = _read(resolved.real, self.mime_of(resolved.real), elsewhere)
        if isinstance(found, _Found) and found.body is not None:
            found.local = self._on_local_disk(found.info.st_dev)
        return found

    def _on_local_disk(self, device: int) -> bool:
        """Whether a file of ``device`` (and the root) are on local file systems; blocking."""
        if self._root_local is None:
            try:
                self._root_local = self.devices.is_local(os.stat(self.real_root).st_dev)
            except OSError:
                return False
        return self._root_local and self.devices.is_local(device)

    def _scan(self, directory: Resolved, relative: str) -> _Listing | Response:
        """The entries of a directory without an index, as :meth:`Root.resolve` finds them.

        Each entry is resolved as a request for it would be, so the listing
        holds nothing the server would refuse; blocking, so run in a thread.
        """
        try:
            entries = scan_directory(directory, self.files.resolve)
        except OSError:
            return Response.not_found(_NOT_FOUND)
        base = directory.path.rstrip("/")
        elsewhere = None if base == relative.rstrip("/") else f"{base}/"
        return _Listing(entries, elsewhere)

    async def _list(self, request: Request, listing: _Listing) -> Response:
        """The listing a visitor may see: the directory's own rules and each entry's apply."""
        if listing.elsewhere is not None:
            denied = await authorise(request, request.base + listing.elsewhere)
            if denied is not None:
                return denied
        entries = []
        for entry in listing.entries:
            # A symlink leading into a protected directory is listed only for who may open it.
            if entry.elsewhere is None or not await authorise(
                request, request.base + entry.elsewhere
            ):
                entries.append(entry)
        body = render_listing(request.path, entries, parent=request.relative_path != "/")
        return Response.success(body, self._listing_type)

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
