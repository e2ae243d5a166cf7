"""The admin capsule's ban pages: every ban, a ban made, a ban lifted.

Routes, relative to the mount point:

``/bans``, ``/bans/add/KIND``              every ban; a certificate or key to ban (asked)
``/ban/KIND/VALUE``                        asks how long, then on to ``/ban/KIND/VALUE/UNTIL/N``
``/ban/KIND/VALUE/UNTIL/N``                asks for the reason (shown to the client), then bans
``/unban/KIND/VALUE/N``                    asks for ``yes``, then lifts the bans

``KIND`` is ``certificate``, ``key`` or ``account``; ``VALUE`` a
fingerprint's 64 hex digits or an account's id.  Asking how long changes
nothing: the answer only chooses the URL of the reason prompt, whose nonce
``N`` was issued for that ban.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..app.request import Request
from ..app.response import Response
from ..gemini.fingerprint import parse_fingerprint
from ..store import Account, BanKind, UnknownAccount
from ..store.bans import ban_until, check_reason
from .render import digits, link, moment, short, shown
from .shared import AdminPages, said_yes, sentence, utc_now

__all__ = ["FOREVER", "AdminBans"]

FOREVER = "ever"
"""How the URL of a ban's reason prompt says the ban has no end."""


@dataclass(frozen=True, slots=True)
class _Target:
    """What a ban applies to: a certificate or key fingerprint, or an account."""

    kind: BanKind
    value: str
    """A canonical fingerprint, or the account's id as text."""
    account: Account | None = None

    @property
    def segment(self) -> str:
        """The target in a URL: ``certificate/HEX``, ``account/ID``."""
        value = str(self.value) if self.account is not None else digits(self.value)
        return f"{self.kind.value}/{value}"

    def said(self) -> str:
        """The target in a sentence or a prompt (escaped)."""
        if self.account is not None:
            return f"the account {shown(self.account.name, 32)}"
        return f"the {self.kind.value} {short(self.value)}"

    def recorded(self) -> str:
        """The target in the audit log: whole, with the account's id."""
        if self.account is not None:
            return f"account {self.account.name} (id {self.account.id})"
        return f"{self.kind.value} {self.value}"

    def is_you(self, request: Request) -> bool:
        """Whether a ban of this target would lock out the admin making it."""
        identity = request.identity
        assert identity is not None
        if self.account is not None:
            return request.account is not None and request.account.id == self.account.id
        return self.value in (identity.fingerprint, identity.key_fingerprint)


class AdminBans(AdminPages):
    """Bans: the list, and a certificate, key or account banned or let back in."""

    async def _target(self, request: Request) -> _Target | Response:
        """The ban target of the URL's ``kind`` and ``value``, or 51."""
        try:
            kind = BanKind(request.params["kind"])
        except ValueError:
            return Response.not_found("no such kind of ban (certificate, key or account)")
        value = request.params["value"]
        if kind is BanKind.ACCOUNT:
            if not value.isdecimal() or len(value) > 18:
                return Response.not_found("no such account")
            account = await self._store(request).account_by_id(int(value))
            if account is None:
                return Response.not_found("no such account")
            return _Target(kind, str(account.id), account)
        try:
            return _Target(kind, parse_fingerprint(value))
        except ValueError:
            return Response.not_found("not a fingerprint")

    async def bans(self, request: Request) -> str:
        """Every ban, newest first, each with its way out."""
        store = self._store(request)
        bans = await store.bans()
        accounts = {
            ban.value for ban in bans if ban.kind is BanKind.ACCOUNT and ban.value.isdecimal()
        }
        names = {}
        for value in accounts:
            account = await store.account_by_id(int(value))
            if account is not None:
                names[value] = account.name
        lines = ["# Bans", ""]
        lines += self._ban_lines(request, bans, names) or ["None."]
        lines += [
            "",
            link(f"{request.base}/bans/add/certificate", "Ban a certificate"),
            link(f"{request.base}/bans/add/key", "Ban a key (every certificate made with it)"),
            "To ban an account, open it from the accounts.",
            link(f"{request.base}/accounts", "Accounts"),
            link(f"{request.base}/", "Overview"),
        ]
        return "\n".join(lines) + "\n"

    async def ban_fingerprint(self, request: Request) -> Response | str:
        """Ask which certificate or key to ban, then on to how long."""
        kind = request.params["kind"]
        if kind not in (BanKind.CERTIFICATE, BanKind.KEY):
            return Response.not_found("ban a certificate or a key here (accounts from their page)")
        if request.query is None or not request.query.strip():
            return Response.input(
                f"Fingerprint of the {kind} to ban (or its first 12 or more hex digits)"
            )
        found = await self._resolve(request, request.query)
        if isinstance(found, Response):
            return found
        return Response.redirect(f"{request.base}/ban/{kind}/{digits(found)}")

    async def ban_start(self, request: Request) -> Response | str:
        """Ask how long the ban lasts, then on to the reason prompt (made for this certificate)."""
        target = await self._target(request)
        if isinstance(target, Response):
            return target
        if target.is_you(request):
            return self._unchanged(
                "Not banned",
                f"That is you: banning {target.said()} would shut you out of these pages.",
                link(f"{request.base}/bans", "Bans"),
            )
        if request.query is None:
            return Response.input(
                f"How long is {target.said()} banned? A duration (7d, 12h, 30m), "
                "a date (2025-06-01), or nothing for ever"
            )
        answer = request.query.strip()
        until = FOREVER
        if answer:
            try:
                until = str(int(ban_until(answer, utc_now()).timestamp()))
            except ValueError as exc:
                return Response.input(f"{shown(str(exc), 200)}; how long?")
        here = f"{request.base}/ban/{target.segment}/{until}"
        return await self.confirmations.prompt_at(
            request, here, "admin-ban", f"{target.segment}/{until}"
        )

    async def ban(self, request: Request) -> Response | str:
        """Ask for the reason the client will read, and ban."""
        target = await self._target(request)
        if isinstance(target, Response):
            return target
        until_text, nonce = request.params["until"], request.params["nonce"]
        action = f"{target.segment}/{until_text}"
        start = f"{request.base}/ban/{target.segment}"
        try:
            until = (
                None
                if until_text == FOREVER
                else dt.datetime.fromtimestamp(int(until_text), dt.UTC)
            )
        except (ValueError, OverflowError, OSError):
            return Response.not_found("no such ban prompt")
        ends = "for ever" if until is None else f"until {moment(until)}"
        if request.query is None:
            if not await self.confirmations.valid(request, "admin-ban", action, nonce):
                return self.confirmations.stale(start)
            return Response.input(f"Ban {target.said()} {ends}: the reason, which they will read")
        try:
            reason = check_reason(request.query)
        except ValueError as exc:
            if not await self.confirmations.valid(request, "admin-ban", action, nonce):
                return self.confirmations.stale(start)
            return Response.input(f"{shown(str(exc), 100)}; the reason for banning {target.said()}")
        now = utc_now()
        if target.is_you(request) or (until is not None and until <= now):
            return self._unchanged(
                "Not banned",
                "That is you." if target.is_you(request) else "That end is already past.",
                link(start, "Start again"),
            )
        if await self.confirmations.take(request, "admin-ban", action, nonce) is None:
            return self.confirmations.stale(start)
        try:
            await self._store(request).ban(target.kind, target.value, reason, now, until)
        except UnknownAccount:
            return Response.not_found("no such account (deleted meanwhile)")
        note = await self._audit(request, "ban", f"{target.recorded()} {ends}", reason)
        return self._done(
            "Banned",
            f"{sentence(target.said())} is banned {ends}. "
            f"They read: banned: {shown(reason, 200)}{note}",
            link(f"{request.base}/unban/{target.segment}", "Lift it"),
            link(f"{request.base}/bans", "Bans"),
        )

    async def unban_start(self, request: Request) -> Response | str:
        """On to the confirmation of lifting the bans on a certificate, key or account."""
        target = await self._target(request)
        if isinstance(target, Response):
            return target
        here = f"{request.base}/unban/{target.segment}"
        return await self.confirmations.prompt_at(request, here, "admin-unban", target.segment)

    async def unban(self, request: Request) -> Response | str:
        """Lift every ban on the target once ``yes`` is typed."""
        target = await self._target(request)
        if isinstance(target, Response):
            return target
        nonce, start = request.params["nonce"], f"{request.base}/unban/{target.segment}"
        back = link(f"{request.base}/bans", "Bans")
        if request.query is None:
            if not await self.confirmations.valid(request, "admin-unban", target.segment, nonce):
                return self.confirmations.stale(start)
            return Response.input(f"Type yes to lift every ban on {target.said()}")
        if not said_yes(request.query):
            return self._unchanged("Not lifted", "You did not type yes.", back)
        if await self.confirmations.take(request, "admin-unban", target.segment, nonce) is None:
            return self.confirmations.stale(start)
        lifted = await self._store(request).unban(target.kind, target.value)
        if not lifted:
            return self._unchanged("Not lifted", f"{sentence(target.said())} has no ban.", back)
        note = await self._audit(request, "unban", target.recorded())
        return self._done(
            "Ban lifted",
            f"{sentence(target.said())} is no longer banned "
            f"({lifted} ban{'s' if lifted != 1 else ''} lifted).{note}",
            back,
        )
