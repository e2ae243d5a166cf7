"""The admin capsule as one handler: the gate (60 / 62 / 61) in front of every page, and its routes.

::

    app.mount("/admin/", admin_app(admins=["SHA256:…"], lists=["admins"]))

or, with ``hospes serve``, the ``[admin]`` table (:func:`with_admin` puts it
in front of the capsule, its gateways included, so nothing else answers under
its mount).  Every request under the mount, a page that does not exist
included, first goes through :func:`~hospes.app.access.check` with an
``allowlist`` rule of the admins' fingerprints and lists: no certificate gets
60, an expired or otherwise invalid one 62, a banned one or one that is not
an admin's 61.  Only then are the routes looked at.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping

from ..app.access import AccessRule, Requirement, check, path_matches
from ..app.dispatch import STORE_UNAVAILABLE
from ..app.request import Request
from ..app.response import Response
from ..app.routing import Application, Handler, call_handler
from ..app.upload import no_uploads
from ..gemini.escape import printable
from ..gemini.fingerprint import parse_fingerprint
from ..store import StoreError
from .monitor import Monitor
from .overview import Overview
from .pages import AdminPages

__all__ = ["AdminCapsule", "admin_app", "with_admin"]

log = logging.getLogger("hospes.admin")


class AdminCapsule:
    """The admin pages behind their gate; a handler to mount anywhere."""

    accepts_uploads = False

    def __init__(self, rule: AccessRule, app: Application) -> None:
        self.rule = rule
        self.app = app

    async def __call__(self, request: Request) -> Response:
        """60, 62 or 61 for anyone but an admin; the page for an admin."""
        now = dt.datetime.now(dt.UTC)
        store = request.store
        try:
            if request.account is None and request.identity is not None and store is not None:
                # In front of a capsule that never reads accounts, the server did not look
                # this one up: an account ban must hold here too.
                request.account = await store.recognise(request.identity, now)
            denied = await check(self.rule, request, now)
        except StoreError:
            return Response.temporary_failure(STORE_UNAVAILABLE)
        if denied is not None:
            return denied
        if request.upload is not None:
            return no_uploads(request.path)
        if store is None:
            return Response.temporary_failure("the admin pages need the identity store")
        try:
            return await self.app(request)
        except StoreError as exc:  # down, or a change that lost a race: nothing was changed
            log.error("admin capsule: identity store: %s", exc)
            return Response.temporary_failure(f"could not complete that: {printable(str(exc))}")


def admin_app(
    admins: Iterable[str] = (),
    lists: Iterable[str] = (),
    *,
    monitor: Monitor | None = None,
    lists_in_use: Iterable[str] = (),
) -> AdminCapsule:
    """The admin capsule for the certificates or keys ``admins`` and those on ``lists``.

    ``admins`` are fingerprints in any notation (:class:`ValueError` for one
    that is not); ``monitor`` is where the overview reads the server's
    counters (without one, it shows the store only); ``lists_in_use`` names
    the allow-lists the server's rules consult, so the pages show them even
    while they are empty.  With neither ``admins`` nor ``lists``, nobody
    gets in (:class:`ValueError`: that is a mistake).
    """
    fingerprints = frozenset(parse_fingerprint(value) for value in admins)
    names = tuple(lists)
    if not fingerprints and not names:
        raise ValueError("an admin capsule needs admins (fingerprints) or lists")
    rule = AccessRule("/", Requirement.ALLOWLIST, fingerprints=fingerprints, lists=names)
    pages = AdminPages(fingerprints, names, frozenset(lists_in_use))
    overview = Overview(monitor)
    app = Application()
    for pattern, handler in (
        ("/", overview),
        ("/audit", overview.audit),
        ("/accounts", pages.accounts),
        ("/accounts/search", pages.search),
        ("/accounts/{id:int}", pages.account),
        ("/accounts/{id:int}/rename", pages.rename_start),
        ("/accounts/{id:int}/rename/{nonce}", pages.rename),
        ("/accounts/{id:int}/delete", pages.delete_start),
        ("/accounts/{id:int}/delete/{nonce}", pages.delete),
        ("/accounts/{id:int}/remove/{fingerprint}", pages.remove_start),
        ("/accounts/{id:int}/remove/{fingerprint}/{nonce}", pages.remove),
        ("/fingerprints/{fingerprint}", pages.fingerprint),
        ("/bans", pages.bans),
        ("/bans/add/{kind}", pages.ban_fingerprint),
        ("/ban/{kind}/{value}", pages.ban_start),
        ("/ban/{kind}/{value}/{until}/{nonce}", pages.ban),
        ("/unban/{kind}/{value}", pages.unban_start),
        ("/unban/{kind}/{value}/{nonce}", pages.unban),
        ("/lists", pages.allow_lists),
        ("/lists/{list}", pages.allow_list),
        ("/lists/{list}/add", pages.allow_ask),
        ("/lists/{list}/add/{fingerprint}", pages.allow_start),
        ("/lists/{list}/add/{fingerprint}/{nonce}", pages.allow),
        ("/lists/{list}/remove/{fingerprint}", pages.disallow_start),
        ("/lists/{list}/remove/{fingerprint}/{nonce}", pages.disallow),
    ):
        app.add_route(pattern, handler)
    return AdminCapsule(rule, app)


class _AdminMounts:
    """Sends every request under a hostname's admin mount to its capsule, the rest on."""

    def __init__(self, mounts: Mapping[str, tuple[str, Handler]], inner: Handler) -> None:
        self.mounts = {
            host: (prefix.rstrip("/"), handler) for host, (prefix, handler) in mounts.items()
        }
        self.inner = inner
        # The capsule looks up the visitor's account itself: a capsule that never reads
        # accounts (static files) keeps the server from looking them up on every request.
        self.uses_accounts = getattr(inner, "uses_accounts", True)
        self.accepts_uploads = getattr(inner, "accepts_uploads", False)

    async def __call__(self, request: Request) -> Response:
        mounted = self.mounts.get(request.hostname)
        if mounted is not None and path_matches(mounted[0], request.relative_path):
            request.base += mounted[0]
            return await call_handler(mounted[1], request)
        return await call_handler(self.inner, request)


def with_admin(handler: Handler, mounts: Mapping[str, tuple[str, Handler]]) -> Handler:
    """``handler`` with, per hostname, an admin capsule in front of it at a prefix.

    ``mounts`` maps a hostname to (prefix, admin capsule); a hostname not in
    it is served by ``handler`` alone.
    """
    return _AdminMounts(mounts, handler) if mounts else handler
