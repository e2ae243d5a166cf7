"""Static files under a root directory, served safely.

A request path maps to a file below the root and nowhere else: the path is
already canonical (no dot segments) when it gets here, hidden names (a leading
dot) are refused, and the resolved real path must still be inside the real
root, so no ``..``, percent-encoded trick or symlink reaches outside.
Directories serve their ``index.gmi`` (or, with ``listing``, a generated
listing when they have none); a directory requested without its trailing
slash is redirected (31) so relative links in it work.

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
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..gemini.protocol import Status, check_header
from ..gemini.url import quote_path
from .listing import render_listing, scan_directory
from .request import Request
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


def _signature(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


class StaticFiles:
    """A handler serving the files of ``root``.

    Small files are kept in memory (at most ``cache_bytes`` in all) and
    revalidated on every request with one ``stat`` of their resolved path: an
    edited, replaced or removed file is never served stale, and a changed file
    goes through the full resolution (and its checks) again.

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
    ) -> None:
        self.root = Path(root)
        self.real_root = os.path.realpath(self.root)
        if not os.path.isdir(self.real_root):
            raise NotADirectoryError(f"capsule root {self.root} is not a directory")
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
            directory, real = real, os.path.realpath(os.path.join(real, self.index))
            if not self._inside(real):
                return Response.not_found(_NOT_FOUND)
            if self.listing and not os.path.isfile(real):
                return await self._list(request, directory)
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
            mime = self.mime_of(real)
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

    async def _list(self, request: Request, directory: str) -> Response:
        """The generated listing of ``directory``: what :meth:`_resolve` would serve of it."""
        relative = request.relative_path

        def resolve(name: str) -> str | None:
            return self._resolve(relative + name)

        try:
            # A directory read and a stat per entry: off the event loop.
            entries = await asyncio.to_thread(scan_directory, directory, resolve)
        except OSError:
            return Response.not_found(_NOT_FOUND)
        body = render_listing(request.path, entries, parent=relative != "/")
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
