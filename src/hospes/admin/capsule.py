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

Routes, relative to the mount point (``/admin/``), each group in its module:

``/``, ``/audit``                          the overview and the audit log (:mod:`.overview`)
``/accounts…``                             accounts: search, see, rename, delete (:mod:`.accounts`)
``/fingerprints/FP``                       what the store knows of one (:mod:`.fingerprints`)
``/bans…``, ``/ban/…``, ``/unban/…``       bans made and lifted (:mod:`.bans`)
``/lists…``                                allow-lists and their entries (:mod:`.allowlists`)

Every change answers a ``10`` prompt at a URL ending in a nonce that the
server issued to the admin's certificate for exactly that change
(:mod:`hospes.app.confirm`); the same URL without the nonce only redirects to
a fresh one, and the steps before the last prompt (how long, which
fingerprint) change nothing.  So no link, followed by mistake or sent by
someone else, changes anything: the worst it does is show the admin a prompt
saying what it would do.  Each change is written to the store's audit log
with the admin's fingerprint.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping

from ..app.access import STORE_UNAVAILABLE, AccessRule, Requirement, check, path_matches
from ..app.request import Request
from ..app.response import Response
from ..app.routing import Application, Handler, call_handler
from ..app.upload import no_uploads
from ..gemini.escape import printable
from ..gemini.fingerprint import parse_fingerprint
from ..store import StoreError
from .accounts import AdminAccounts
from .allowlists import AdminAllowLists
from .bans import AdminBans
from .fingerprints import AdminFingerprints
from .monitor import Monitor
from .overview import Overview

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
    shared = (fingerprints, names, frozenset(lists_in_use))
    accounts, bans = AdminAccounts(*shared), AdminBans(*shared)
    allowlists, about = AdminAllowLists(*shared), AdminFingerprints(*shared)
    overview = Overview(monitor)
    app = Application()
    for pattern, handler in (
        ("/", overview),
        ("/audit", overview.audit),
        ("/accounts", accounts.accounts),
        ("/accounts/search", accounts.search),
        ("/accounts/{id:int}", accounts.account),
        ("/accounts/{id:int}/rename", accounts.rename_start),
        ("/accounts/{id:int}/rename/{nonce}", accounts.rename),
        ("/accounts/{id:int}/delete", accounts.delete_start),
        ("/accounts/{id:int}/delete/{nonce}", accounts.delete),
        ("/accounts/{id:int}/remove/{fingerprint}", accounts.remove_start),
        ("/accounts/{id:int}/remove/{fingerprint}/{nonce}", accounts.remove),
        ("/fingerprints/{fingerprint}", about.fingerprint),
        ("/bans", bans.bans),
        ("/bans/add/{kind}", bans.ban_fingerprint),
        ("/ban/{kind}/{value}", bans.ban_start),
        ("/ban/{kind}/{value}/{until}/{nonce}", bans.ban),
        ("/unban/{kind}/{value}", bans.unban_start),
        ("/unban/{kind}/{value}/{nonce}", bans.unban),
        ("/lists", allowlists.allow_lists),
        ("/lists/{list}", allowlists.allow_list),
        ("/lists/{list}/add", allowlists.allow_ask),
        ("/lists/{list}/add/{fingerprint}", allowlists.allow_start),
        ("/lists/{list}/add/{fingerprint}/{nonce}", allowlists.allow),
        ("/lists/{list}/remove/{fingerprint}", allowlists.disallow_start),
        ("/lists/{list}/remove/{fingerprint}/{nonce}", allowlists.disallow),
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
