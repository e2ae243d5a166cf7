"""A capsule's gateways in front of its handler: CGI, SCGI and Titan mounts by URL prefix.

:func:`with_gateways` wraps a handler (static files, the demo, an
application) with the ``[[cgi]]``, ``[[scgi]]`` and ``[[titan]]`` tables of
the configuration: the longest matching prefix wins, everything else goes to
the wrapped handler.  A Titan request reaches only a handler that takes
uploads (else 59, before its body is read); an ``[[titan]]`` table without a
directory checks an upload (:class:`~hospes.gateways.titan.TitanGate`) and
lets it through to the wrapped application's route.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..app.access import path_matches
from ..app.request import Request
from ..app.response import Response
from ..app.routing import Handler, call_handler
from ..app.upload import no_uploads
from ..policy.clock import Clock
from .cgi import CGIMount, CGIScripts
from .scgi import SCGIApplication, SCGIMount
from .titan import TitanDirectory, TitanGate, TitanMount

__all__ = ["Gateways", "with_gateways"]


class Gateways:
    """Routes requests to gateway handlers by prefix, and the rest to ``inner``."""

    def __init__(
        self,
        mounts: Sequence[tuple[str, Handler]],
        inner: Handler,
        gates: Sequence[tuple[str, TitanGate]] = (),
    ) -> None:
        self.mounts = sorted(
            ((prefix.rstrip("/"), handler) for prefix, handler in mounts),
            key=lambda mount: len(mount[0]),
            reverse=True,
        )
        self.gates = sorted(
            ((prefix.rstrip("/"), gate) for prefix, gate in gates),
            key=lambda gate: len(gate[0]),
            reverse=True,
        )
        self.inner = inner
        handlers = [handler for _, handler in self.mounts]
        self.uses_accounts = any(
            getattr(handler, "uses_accounts", True) for handler in (*handlers, inner)
        )
        self.accepts_uploads = bool(self.gates) or any(
            getattr(handler, "accepts_uploads", False) for handler in (*handlers, inner)
        )

    async def __call__(self, request: Request) -> Response:
        """Answer with the gateway of the longest matching prefix, or the wrapped handler."""
        path = request.relative_path
        upload = request.upload
        if upload is not None:
            for prefix, gate in self.gates:
                if path_matches(prefix, path):
                    refused = await gate.admit(request, upload)
                    if refused is not None:
                        return refused
                    break
        for prefix, handler in self.mounts:
            if path_matches(prefix, path):
                if upload is not None and not getattr(handler, "accepts_uploads", False):
                    return no_uploads(request.path)
                request.base += prefix
                return await call_handler(handler, request)
        if upload is not None and not getattr(self.inner, "accepts_uploads", False):
            return no_uploads(request.path)
        return await call_handler(self.inner, request)


def with_gateways(
    inner: Handler,
    *,
    cgi: Sequence[CGIMount] = (),
    scgi: Sequence[SCGIMount] = (),
    titan: Sequence[TitanMount] = (),
    software: str = "hospes",
    clock: Clock = time.monotonic,
) -> Handler:
    """``inner`` behind the gateways of the given tables (``inner`` itself when there are none).

    Raises :class:`NotADirectoryError` or :class:`ValueError` for a table
    that cannot be served (a missing directory, a malformed address).
    """
    if not (cgi or scgi or titan):
        return inner
    mounts: list[tuple[str, Handler]] = []
    gates: list[tuple[str, TitanGate]] = []
    for mount in cgi:
        mounts.append((mount.path, CGIScripts.from_mount(mount, software)))
    for scgi_mount in scgi:
        mounts.append((scgi_mount.path, SCGIApplication.from_mount(scgi_mount, software, clock)))
    for titan_mount in titan:
        if titan_mount.directory is None:
            gates.append((titan_mount.path, TitanGate(titan_mount)))
        else:
            mounts.append((titan_mount.path, TitanDirectory(titan_mount)))
    return Gateways(mounts, inner, gates)
