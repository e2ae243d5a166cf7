"""Titan uploads: into a directory (served back over Gemini), or on to an application's routes.

An ``[[titan]]`` table takes uploads under a URL prefix.  Before a byte of
the body is read, in this order: the server's own checks (validation, rate
limits, ``[[access]]`` rules), then the table's ``require`` (60 / 62 / 61,
as an access rule; uploads always need at least a valid certificate), its
``token`` and its ``max_size`` (59).  With a ``directory``:

- the upload is written atomically: a temporary file in the target's own
  directory, fsynced, renamed over the target; on any failure (a short body,
  a disconnection, a deadline, a full disk) the temporary file is removed
  and the target is left as it was; after a write error (a full disk) the
  rest of the body is read and thrown away before the ``40``, so that the
  answer is not lost in a reset;
- the target is found by the resolution of static files
  (:meth:`~hospes.app.resolve.Root.target`: no hidden names, no way out of
  the directory, through ``..`` or a symlink), on the loop's thread pool; its
  directory must exist;
- the access rules of where the target really is apply too
  (:func:`~hospes.app.resolve.authorise`), before a byte is read: a symlink
  inside the directory does not lead an upload into a protected one;
- a target name that is a symlink is replaced (the rename), never followed;
- success answers ``30`` to the ``gemini://`` URL of the uploaded resource,
  which the same prefix serves from the directory;
- the uploader (fingerprint, name, account) is logged.

Without a directory, the checks are applied and the upload goes on to the
application's route for that path (``Application.route(..., max_upload=N)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from ..app.access import AccessRule, Requirement, check
from ..app.request import Request
from ..app.resolve import Root, Target, authorise, names
from ..app.response import Response
from ..app.static import StaticFiles
from ..app.upload import DEFAULT_UPLOAD_TIMEOUT, Upload, UploadIncomplete, check_upload
from ..files import atomic_writer
from ..gemini.escape import printable
from ..gemini.protocol import Status
from ..gemini.url import quote_path
from .environment import resolve_account

__all__ = [
    "DEFAULT_MAX_SIZE",
    "TitanDirectory",
    "TitanGate",
    "TitanMount",
    "write_upload",
]

log = logging.getLogger("hospes.gateways")

DEFAULT_MAX_SIZE = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TitanMount:
    """A ``[[titan]]`` table: who may upload what under ``path``, and where it goes."""

    path: str
    directory: Path | None = None
    """Where uploads are written; None: an application route takes them."""
    max_size: int = DEFAULT_MAX_SIZE
    timeout: float = DEFAULT_UPLOAD_TIMEOUT
    token: str | None = None
    require: Requirement = Requirement.CERTIFICATE
    fingerprints: frozenset[str] = frozenset()
    lists: tuple[str, ...] = ()

    @property
    def rule(self) -> AccessRule:
        """Who may upload, as an access rule."""
        return AccessRule(self.path, self.require, self.fingerprints, self.lists)


class TitanGate:
    """The checks of an ``[[titan]]`` table, before a byte of an upload is read."""

    def __init__(self, mount: TitanMount) -> None:
        if mount.max_size < 0 or mount.timeout <= 0:
            raise ValueError("max_size must not be negative and timeout must be positive")
        self.mount = mount
        self.rule = mount.rule

    async def admit(self, request: Request, upload: Upload) -> Response | None:
        """The refusal (6x, 59) of ``upload``, or None: its body may be read."""
        if self.rule.require is not Requirement.CERTIFICATE:
            await resolve_account(request)
        denied = await check(self.rule, request, dt.datetime.now(dt.UTC))
        if denied is not None:
            return denied
        if self.mount.token is not None and not _same_token(upload.token, self.mount.token):
            return Response(Status.BAD_REQUEST, "this upload needs a valid token (;token=…)")
        refused = check_upload(upload, self.mount.max_size)
        if refused is not None:
            return refused
        upload.timeout = self.mount.timeout
        return None


class TitanDirectory:
    """Uploads into ``directory`` (Titan), and its files served back (Gemini)."""

    uses_accounts = False
    """The account is looked up only for uploads, when ``require`` needs it."""
    accepts_uploads = True

    def __init__(self, mount: TitanMount) -> None:
        if mount.directory is None:
            raise ValueError("a TitanDirectory needs a directory")
        self.gate = TitanGate(mount)
        self.directory = mount.directory
        self.root = Root(mount.directory, what="Titan directory")
        self.files = StaticFiles(mount.directory)

    async def __call__(self, request: Request) -> Response:
        """Write an upload; serve a file for a Gemini request."""
        upload = request.upload
        if upload is None:
            return await self.files(request)
        refused = await self.gate.admit(request, upload)
        if refused is not None:
            return refused
        loop = asyncio.get_running_loop()
        target = await loop.run_in_executor(None, self._target, request.relative_path)
        if isinstance(target, Response):
            return target
        denied = await authorise(request, request.base + target.path)
        if denied is not None:
            return denied
        try:
            await write_upload(Path(target.real), upload)
        except UploadIncomplete as exc:
            log.info("upload to %s abandoned: %s", printable(request.path), exc)
            return Response(Status.BAD_REQUEST, str(exc))
        except IsADirectoryError:
            return Response(Status.BAD_REQUEST, "a directory has that name: upload to a file")
        except OSError as exc:
            log.error("cannot write the upload to %s: %s", target.real, exc.strerror or exc)
            await _discard(upload)
            return Response(Status.TEMPORARY_FAILURE, "the upload could not be stored")
        identity = request.identity
        assert identity is not None  # the gate let only valid certificates through
        account = f", account {request.account.name}" if request.account is not None else ""
        log.info(
            "upload of %d bytes (%s) to %s by %s (%s%s) from %s",
            upload.size,
            upload.mime,
            printable(request.path),
            identity.fingerprint,
            identity.name,
            account,
            request.remote_address,
        )
        location = replace(
            request.url, scheme="gemini", path=quote_path(request.path), query=None, fragment=None
        )
        return Response.redirect(str(location))

    def _target(self, relative: str) -> Target | Response:
        """Where an upload to ``relative`` is written, or why it cannot be; blocking."""
        parts = names(relative)
        if parts is None:
            return Response(Status.BAD_REQUEST, "uploads cannot go to that name")
        if not parts or relative.endswith("/"):
            return Response(Status.BAD_REQUEST, "name a file to upload to, not a directory")
        target = self.root.target(relative)
        if target is None:
            return Response.not_found("no such directory")
        if os.path.isdir(target.real):
            return Response(Status.BAD_REQUEST, "a directory has that name: upload to a file")
        return target


async def write_upload(target: Path, upload: Upload) -> None:
    """Write ``upload``'s body to ``target`` atomically, the file work on a thread.

    ``target`` appears only when the whole body was received, fsynced and
    renamed; on any exception (:class:`UploadIncomplete`, cancellation by a
    deadline, a full disk) the temporary file is removed and ``target`` is
    left as it was.
    """
    writer = atomic_writer(target, mode=0o644)
    handle = await _on_thread(writer.__enter__)
    try:
        async for chunk in upload:
            await _on_thread(handle.write, chunk)
    except BaseException as exc:
        await _on_thread(writer.__exit__, type(exc), exc, exc.__traceback__)
        raise
    await _on_thread(writer.__exit__, None, None, None)


async def _on_thread(function: Callable[..., T], *args: object) -> T:
    """``function(*args)`` on a worker thread, finished before a cancellation is let through.

    A write still running on its thread when the file is closed and removed
    could land in another file that reuses the descriptor: so a cancelled
    caller still waits for the thread.
    """
    future = asyncio.get_running_loop().run_in_executor(None, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise


async def _discard(upload: Upload) -> None:
    """Read the rest of a body that will not be stored (a full disk), under its deadline.

    The client is still sending it: a connection closed with its bytes unread
    is reset, and the reset destroys the answer in the client's buffers.  The
    size was admitted already (``max_size``).
    """
    with contextlib.suppress(UploadIncomplete):
        async for _ in upload:
            pass


def _same_token(given: str | None, expected: str) -> bool:
    """Compare in constant time, so that the time of a refusal says nothing of the token."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
