"""The admin capsule's pages: accounts, bans and allow-lists, changed only through issued prompts.

Routes, relative to the mount point (``/admin/``):

``/``                                      the overview (:mod:`.overview`)
``/accounts``, ``/accounts/search``        accounts by name; a search by name or fingerprint
``/accounts/ID``                           one account: certificates, bans, what can be done
``/accounts/ID/rename/N``                  asks for the new name
``/accounts/ID/delete/N``                  asks for the account's name, then deletes it
``/accounts/ID/remove/FP/N``               asks for ``yes``, then removes that certificate
``/fingerprints/FP``                       what the store knows of a fingerprint
``/bans``, ``/bans/add/KIND``              every ban; a certificate or key to ban (asked)
``/ban/KIND/VALUE``                        asks how long, then on to ``/ban/KIND/VALUE/UNTIL/N``
``/ban/KIND/VALUE/UNTIL/N``                asks for the reason (shown to the client), then bans
``/unban/KIND/VALUE/N``                    asks for ``yes``, then lifts the bans
``/lists``, ``/lists/NAME``                allow-lists; one list's fingerprints
``/lists/NAME/add``                        asks for a fingerprint, then ``…/add/FP/N``
``/lists/NAME/add/FP/N``                   asks for the reason, then adds it
``/lists/NAME/remove/FP/N``                asks for ``yes``, then removes it
``/audit``                                 the audit log

``KIND`` is ``certificate``, ``key`` or ``account``; ``FP`` a fingerprint's
64 hex digits.  Every change answers a ``10`` prompt at a URL ending in a
nonce ``N`` that the server issued to the admin's certificate for exactly
that change (:mod:`hospes.app.confirm`); the same URL without ``N`` only
redirects to a fresh one, and the steps before the last prompt (how long,
which fingerprint) change nothing.  So no link, followed by mistake or sent
by someone else, changes anything: the worst it does is show the admin a
prompt saying what it would do.  Each change is written to the store's audit
log with the admin's fingerprint.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..app.confirm import Confirmations
from ..app.request import Request
from ..app.response import Response
from ..gemini.fingerprint import parse_fingerprint, parse_fingerprint_prefix
from ..store import (
    NAME_RULE,
    Account,
    Ban,
    BanKind,
    CertificateRecord,
    InvalidName,
    LastCertificate,
    NameTaken,
    Store,
    StoreError,
    UnknownAccount,
)
from ..store.bans import ban_until, check_reason
from .render import digits, link, moment, path, preformatted, short, shown

__all__ = ["AdminPages"]

log = logging.getLogger("hospes.admin")

LISTED = 100
"""Accounts a listing or a search shows (a search narrows it down)."""
FOREVER = "ever"
"""How the URL of a ban's reason prompt says the ban has no end."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _yes(answer: str) -> bool:
    return answer.strip().lower() == "yes"


def _sentence(text: str) -> str:
    """``text`` with its first letter made a capital (and nothing else changed)."""
    return text[:1].upper() + text[1:]


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


class AdminPages:
    """The handlers of the admin capsule (:func:`~hospes.admin.admin_app` routes and gates them).

    ``admins`` and ``lists`` are what admits an admin (a change that would
    lock the admin making it out is refused); ``lists_in_use`` are the
    allow-lists the server's rules consult, shown even while empty.
    """

    def __init__(
        self,
        admins: Collection[str] = (),
        lists: Sequence[str] = (),
        lists_in_use: Collection[str] = (),
        confirmation_lifetime: dt.timedelta = dt.timedelta(minutes=10),
    ) -> None:
        self.admins = frozenset(admins)
        self.lists = tuple(lists)
        self.lists_in_use = frozenset(lists_in_use) | set(self.lists)
        self.confirmations = Confirmations(confirmation_lifetime)

    # -- shared -------------------------------------------------------------------------

    @staticmethod
    def _store(request: Request) -> Store:
        assert request.store is not None  # the gate answers 40 without one
        return request.store

    async def _audit(self, request: Request, action: str, target: str, reason: str = "") -> str:
        """Write the change to the audit log; what the result page adds if that failed."""
        identity = request.identity
        assert identity is not None
        try:
            await self._store(request).add_audit_entry(
                _now(), identity.fingerprint, action, target, reason
            )
        except StoreError as exc:
            # The change is made: keep its record in the server's log at least.
            log.error(
                "audit log: could not record that %s did %s to %s (%s): %s",
                identity.fingerprint,
                action,
                shown(target, 200),
                shown(reason, 200),
                exc,
            )
            return "\nIt could not be written to the audit log (see the server's log).\n"
        return ""

    @staticmethod
    def _done(title: str, text: str, *links: str) -> str:
        return f"# {title}\n\n{text}\n\n" + "\n".join(links) + "\n"

    @staticmethod
    def _unchanged(title: str, why: str, back: str) -> str:
        return f"# {title}\n\n{why} Nothing changed.\n\n{back}\n"

    async def _account(self, request: Request) -> Account | Response:
        account = await self._store(request).account_by_id(int(request.params["id"]))
        return Response.not_found("no such account") if account is None else account

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

    def _locks_out(self, request: Request, list_name: str, fingerprint: str) -> bool:
        """Whether taking ``fingerprint`` off ``list_name`` shuts the admin asking out."""
        identity = request.identity
        assert identity is not None
        own = {identity.fingerprint, identity.key_fingerprint}
        return list_name in self.lists and fingerprint in own and not (own & self.admins)

    # -- accounts -----------------------------------------------------------------------

    async def accounts(self, request: Request) -> str:
        """The first accounts by name, and the search."""
        store = self._store(request)
        found = await store.search_accounts("", LISTED + 1)
        total = (await store.counts(_now())).accounts
        lines = ["# Accounts", "", f"{total} account{'s' if total != 1 else ''}.", ""]
        lines.append(link(f"{request.base}/accounts/search", "Search by name or fingerprint"))
        lines.append("")
        lines += await self._account_lines(request, found[:LISTED])
        if len(found) > LISTED:
            lines.append(f"The first {LISTED} are shown: search to find the others.")
        lines += ["", link(f"{request.base}/", "Overview")]
        return "\n".join(lines) + "\n"

    async def search(self, request: Request) -> Response | str:
        """Ask what to look for; then the accounts named so, or with a fingerprint starting so."""
        if request.query is None or not request.query.strip():
            return Response.input("Part of an account name, or the start of a fingerprint")
        text, store = request.query.strip(), self._store(request)
        found = await store.search_accounts(text, LISTED + 1)
        try:
            prefix = parse_fingerprint_prefix(text, min_digits=4)
        except ValueError:
            prefix = None
        if prefix is not None:  # "cafe" may be a name, or the start of a fingerprint
            ids = {account.id for account in found}
            more = await store.search_accounts(prefix, LISTED + 1)
            found += [account for account in more if account.id not in ids]
            found.sort(key=lambda account: (account.name.lower(), account.id))
        lines = [f"# Accounts matching {shown(text, 71)}", ""]
        lines += await self._account_lines(request, found[:LISTED])
        if not found:
            lines.append("None.")
        elif len(found) > LISTED:
            lines.append(f"Only the first {LISTED} are shown: be more precise.")
        lines += [
            "",
            link(f"{request.base}/accounts/search", "Search again"),
            link(f"{request.base}/accounts", "Accounts"),
        ]
        return "\n".join(lines) + "\n"

    async def _account_lines(self, request: Request, accounts: Sequence[Account]) -> list[str]:
        now = _now()
        banned = {
            ban.value
            for ban in await self._store(request).bans()
            if ban.kind is BanKind.ACCOUNT and ban.active(now)
        }
        return [
            link(
                f"{request.base}/accounts/{account.id}",
                f"{account.name}, since {account.created:%Y-%m-%d}"
                + (" (banned)" if str(account.id) in banned else ""),
            )
            for account in accounts
        ]

    async def account(self, request: Request) -> Response | str:
        """One account: its certificates, awaited fingerprints, bans, and the actions."""
        found = await self._account(request)
        if isinstance(found, Response):
            return found
        account, store, base = found, self._store(request), request.base
        here = f"{base}/accounts/{account.id}"
        records = await store.certificates(account.id)
        awaited = await store.awaited_fingerprints(account.id)
        known = {r.fingerprint for r in records} | {r.key_fingerprint for r in records}
        bans = [
            ban
            for ban in await store.bans()
            if (ban.kind is BanKind.ACCOUNT and ban.value == str(account.id))
            or (ban.kind is not BanKind.ACCOUNT and ban.value in known)
        ]
        lines = [
            f"# {shown(account.name, 32)}",
            "",
            f"Account {account.id}, registered {moment(account.created)}, "
            f"{len(records)} certificate{'s' if len(records) != 1 else ''}.",
            "",
            "## Certificates",
        ]
        for record in records:
            lines += self._certificate_lines(request, account, record, len(records))
        if not records:
            lines += ["", "None yet."]
        for fingerprint in awaited:
            lines += [
                "",
                f"Waiting for its first visit with {fingerprint} "
                "(a certificate with it, or made with that key).",
            ]
        lines += ["", "## Bans", ""]
        lines += self._ban_lines(request, bans, {str(account.id): account.name}) or ["None."]
        lines += [
            "",
            "## Change",
            "",
            link(f"{base}/ban/account/{account.id}", f"Ban {account.name}"),
            link(f"{here}/rename", f"Rename {account.name}"),
            link(f"{here}/delete", f"Delete {account.name} and its certificates"),
            "",
            link(f"{base}/accounts", "Accounts"),
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _certificate_lines(
        request: Request, account: Account, record: CertificateRecord, count: int
    ) -> list[str]:
        base = request.base
        name = record.common_name or "(no name)"
        lines = [
            "",
            f"### {shown(name, 64)}",
            *preformatted(
                [
                    ("certificate", record.fingerprint),
                    ("key", record.key_fingerprint),
                    ("valid", f"{record.not_before:%Y-%m-%d} to {record.not_after:%Y-%m-%d}"),
                    ("first seen", moment(record.first_seen)),
                    ("last seen", moment(record.last_seen)),
                ]
            ),
            link(f"{base}/ban/certificate/{digits(record.fingerprint)}", "Ban this certificate"),
            link(f"{base}/ban/key/{digits(record.key_fingerprint)}", "Ban its key (and renewals)"),
        ]
        if count > 1:
            lines.append(
                link(
                    f"{base}/accounts/{account.id}/remove/{digits(record.fingerprint)}",
                    f"Remove {name} from {account.name}",
                )
            )
        return lines

    @staticmethod
    def _ban_lines(request: Request, bans: Sequence[Ban], names: dict[str, str]) -> list[str]:
        now, lines = _now(), []
        for ban in bans:
            if ban.kind is BanKind.ACCOUNT:
                who = f"account {shown(names.get(ban.value, f'id {ban.value}'), 32)}"
                segment = f"account/{ban.value}"
            else:
                who = f"{ban.kind.value} {short(ban.value)}"
                segment = f"{ban.kind.value}/{digits(ban.value)}"
            until = "for ever" if ban.until is None else f"until {moment(ban.until)}"
            state = "" if ban.active(now) else " (expired)"
            lines.append(
                f"* {who}, since {moment(ban.created)}, {until}{state}: {shown(ban.reason, 200)}"
            )
            if ban.active(now):
                lines.append(link(f"{request.base}/unban/{segment}", f"Lift the ban on {who}"))
        return lines

    async def rename_start(self, request: Request) -> Response | str:
        """On to the new-name prompt, made for this certificate."""
        found = await self._account(request)
        if isinstance(found, Response):
            return found
        here = f"{request.base}/accounts/{found.id}/rename"
        return await self.confirmations.prompt_at(request, here, "admin-rename", str(found.id))

    async def rename(self, request: Request) -> Response | str:
        """Ask for the new name, and rename."""
        found = await self._account(request)
        if isinstance(found, Response):
            return found
        account, nonce = found, request.params["nonce"]
        start = f"{request.base}/accounts/{account.id}/rename"
        target = str(account.id)
        if request.query is None:
            if not await self.confirmations.valid(request, "admin-rename", target, nonce):
                return self.confirmations.stale(start)
            return Response.input(f"New name for {shown(account.name, 32)}: {NAME_RULE}")
        taken = await self.confirmations.take(request, "admin-rename", target, nonce)
        if taken is None:
            return self.confirmations.stale(start)
        name = request.query.strip()
        try:
            renamed = await self._store(request).rename(account.name, name)
        except (InvalidName, NameTaken) as exc:
            await taken.give_back()
            why = (
                f"{shown(exc.existing, 32)!r} looks like it"
                if isinstance(exc, NameTaken) and exc.existing
                else ("it is taken" if isinstance(exc, NameTaken) else NAME_RULE)
            )
            return Response.input(f"{shown(name, 32)!r} cannot be the name ({why}); another")
        except UnknownAccount:
            return Response.not_found("no such account (deleted meanwhile)")
        note = await self._audit(
            request, "rename", f"account {account.name} (id {account.id}), now {renamed.name}"
        )
        return self._done(
            "Renamed",
            f"{shown(account.name, 32)} is now called {shown(renamed.name, 32)}.{note}",
            link(f"{request.base}/accounts/{account.id}", renamed.name),
        )

    async def delete_start(self, request: Request) -> Response | str:
        """On to the prompt that deletes the account once its name is typed."""
        found = await self._account(request)
        if isinstance(found, Response):
            return found
        here = f"{request.base}/accounts/{found.id}/delete"
        return await self.confirmations.prompt_at(request, here, "admin-delete", str(found.id))

    async def delete(self, request: Request) -> Response | str:
        """Delete the account (certificates, link codes, its bans) once its name is typed."""
        found = await self._account(request)
        if isinstance(found, Response):
            return found
        account, nonce = found, request.params["nonce"]
        here = f"{request.base}/accounts/{account.id}"
        target = str(account.id)
        if request.query is None:
            if not await self.confirmations.valid(request, "admin-delete", target, nonce):
                return self.confirmations.stale(f"{here}/delete")
            return Response.input(
                f"Type {shown(account.name, 32)} to delete this account and its certificates"
            )
        if request.query.strip().lower() != account.name.lower():
            return self._unchanged(
                "Not deleted", "You did not type the account's name.", link(here, account.name)
            )
        if await self.confirmations.take(request, "admin-delete", target, nonce) is None:
            return self.confirmations.stale(f"{here}/delete")
        try:
            await self._store(request).delete(account.name)
        except UnknownAccount:
            return Response.not_found("no such account (deleted meanwhile)")
        note = await self._audit(request, "delete-account", f"account {account.name} (id {target})")
        return self._done(
            "Deleted",
            f"The account {shown(account.name, 32)} and its certificates are gone.{note}",
            link(f"{request.base}/accounts", "Accounts"),
        )

    async def _removable(self, request: Request) -> tuple[Account, CertificateRecord] | Response:
        found = await self._account(request)
        if isinstance(found, Response):
            return found
        try:
            fingerprint = parse_fingerprint(request.params["fingerprint"])
        except ValueError:
            return Response.not_found("not a fingerprint")
        for record in await self._store(request).certificates(found.id):
            if record.fingerprint == fingerprint:
                return found, record
        return Response.not_found("no such certificate in this account")

    async def remove_start(self, request: Request) -> Response | str:
        """On to the confirmation of removing one of an account's certificates."""
        found = await self._removable(request)
        if isinstance(found, Response):
            return found
        account, record = found
        here = f"{request.base}/accounts/{account.id}/remove/{digits(record.fingerprint)}"
        target = f"{account.id}:{record.fingerprint}"
        return await self.confirmations.prompt_at(request, here, "admin-remove", target)

    async def remove(self, request: Request) -> Response | str:
        """Remove the certificate once ``yes`` is typed (never the account's last one)."""
        found = await self._removable(request)
        if isinstance(found, Response):
            return found
        account, record = found
        nonce, target = request.params["nonce"], f"{account.id}:{record.fingerprint}"
        back = link(f"{request.base}/accounts/{account.id}", account.name)
        start = f"{request.base}/accounts/{account.id}/remove/{digits(record.fingerprint)}"
        name = record.common_name or "(no name)"
        if request.query is None:
            if not await self.confirmations.valid(request, "admin-remove", target, nonce):
                return self.confirmations.stale(start)
            return Response.input(
                f"Type yes to remove the certificate {shown(name, 32)} "
                f"({short(record.fingerprint)}) from {shown(account.name, 32)}"
            )
        if not _yes(request.query):
            return self._unchanged("Not removed", "You did not type yes.", back)
        if await self.confirmations.take(request, "admin-remove", target, nonce) is None:
            return self.confirmations.stale(start)
        try:
            await self._store(request).remove_certificate(account.id, record.fingerprint)
        except LastCertificate as exc:
            return self._unchanged("Not removed", f"{shown(str(exc), 200)}.", back)
        note = await self._audit(
            request,
            "remove-certificate",
            f"certificate {record.fingerprint} of account {account.name} (id {account.id})",
        )
        return self._done(
            "Removed",
            f"{shown(account.name, 32)} can no longer sign in with {shown(name, 32)} "
            f"({short(record.fingerprint)}).{note}",
            back,
        )

    # -- fingerprints -------------------------------------------------------------------

    async def fingerprint(self, request: Request) -> Response | str:
        """What the store knows of a fingerprint (accounts, bans, lists), and what to do."""
        try:
            value = parse_fingerprint(request.params["fingerprint"])
        except ValueError:
            return Response.not_found("not a fingerprint")
        store, base, hexed = self._store(request), request.base, digits(value)
        lines = [f"# {short(value)}", "", f"Everything the store knows of {value}.", ""]
        known = len(lines)
        for account in await store.search_accounts(value, 10):
            records = await store.certificates(account.id)
            what = (
                "certificate"
                if any(r.fingerprint == value for r in records)
                else "key"
                if any(r.key_fingerprint == value for r in records)
                else "awaited certificate or key"
            )
            lines.append(link(f"{base}/accounts/{account.id}", f"The {what} of {account.name}"))
        bans = [ban for ban in await store.bans() if ban.value == value]
        lines += self._ban_lines(request, bans, {})
        lists = sorted(set(await store.allow_lists()) | self.lists_in_use)
        on = [name for name in lists if value in await store.allow_list(name)]
        for name in on:
            lines.append(link(f"{base}/lists/{path(name)}", f"On the allow-list {name}"))
        if len(lines) == known:
            lines.append("Nothing: no account, ban or allow-list has it.")
        lines += [
            "",
            link(f"{base}/ban/certificate/{hexed}", "Ban it as a certificate"),
            link(f"{base}/ban/key/{hexed}", "Ban it as a key (every certificate made with it)"),
        ]
        lines += [
            link(f"{base}/lists/{path(name)}/add/{hexed}", f"Add it to the allow-list {name}")
            for name in lists
            if name not in on
        ]
        lines += ["", link(f"{base}/", "Overview")]
        return "\n".join(lines) + "\n"

    # -- bans ---------------------------------------------------------------------------

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

    async def _resolve(self, request: Request, typed: str) -> str | Response:
        """The whole fingerprint ``typed`` is, or begins (one the store knows); else asks again."""
        try:
            value = parse_fingerprint_prefix(typed)
        except ValueError:
            return Response.input(
                f"{shown(typed.strip(), 80)!r} is not a fingerprint; type SHA256: and 64 hex "
                "digits (or the first 12 or more)"
            )
        if len(digits(value)) == 64:
            return value
        found = await self._store(request).fingerprints_with_prefix(value, limit=2)
        if len(found) != 1:
            which = "no certificate or key the store knows" if not found else "several"
            return Response.input(f"{which} start with {value}; type the whole fingerprint")
        return found[0]

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
                until = str(int(ban_until(answer, _now()).timestamp()))
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
        now = _now()
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
            f"{_sentence(target.said())} is banned {ends}. "
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
        if not _yes(request.query):
            return self._unchanged("Not lifted", "You did not type yes.", back)
        if await self.confirmations.take(request, "admin-unban", target.segment, nonce) is None:
            return self.confirmations.stale(start)
        lifted = await self._store(request).unban(target.kind, target.value)
        if not lifted:
            return self._unchanged("Not lifted", f"{_sentence(target.said())} has no ban.", back)
        note = await self._audit(request, "unban", target.recorded())
        return self._done(
            "Ban lifted",
            f"{_sentence(target.said())} is no longer banned "
            f"({lifted} ban{'s' if lifted != 1 else ''} lifted).{note}",
            back,
        )

    # -- allow-lists --------------------------------------------------------------------

    async def allow_lists(self, request: Request) -> str:
        """Every allow-list the store has or the server's rules name, with its size."""
        sizes = await self._store(request).allow_lists()
        lines = ["# Allow-lists", ""]
        for name in sorted(set(sizes) | self.lists_in_use):
            count = sizes.get(name, 0)
            role = " (its certificates are admins here)" if name in self.lists else ""
            unused = "" if name in self.lists_in_use else " (no rule uses it)"
            lines.append(
                link(
                    f"{request.base}/lists/{path(name)}",
                    f"{name}: {count} fingerprint{'s' if count != 1 else ''}{role}{unused}",
                )
            )
        if len(lines) == 2:
            lines.append("None: no rule names one, and the store has none.")
        lines += ["", link(f"{request.base}/", "Overview")]
        return "\n".join(lines) + "\n"

    async def allow_list(self, request: Request) -> str:
        """One list's fingerprints, each removable, and the way to add one."""
        name = request.params["list"]
        fingerprints = await self._store(request).allow_list(name)
        here = f"{request.base}/lists/{path(name)}"
        lines = [f"# The allow-list {shown(name, 64)}", ""]
        if name in self.lists:
            lines += ["Every certificate or key on it is an admin here.", ""]
        for fingerprint in fingerprints:
            lines.append(link(f"{request.base}/fingerprints/{digits(fingerprint)}", fingerprint))
            lines.append(
                link(f"{here}/remove/{digits(fingerprint)}", f"Remove {short(fingerprint)}")
            )
        if not fingerprints:
            lines.append("It is empty.")
        lines += [
            "",
            link(f"{here}/add", "Add a fingerprint"),
            link(f"{request.base}/lists", "Allow-lists"),
        ]
        return "\n".join(lines) + "\n"

    async def allow_ask(self, request: Request) -> Response | str:
        """Ask which fingerprint to add, then on to the reason prompt."""
        name = request.params["list"]
        if request.query is None or not request.query.strip():
            return Response.input(
                f"Fingerprint of the certificate or key to add to {shown(name, 64)} "
                "(or its first 12 or more hex digits)"
            )
        found = await self._resolve(request, request.query)
        if isinstance(found, Response):
            return found
        return await self._allow_prompt(request, name, found)

    async def allow_start(self, request: Request) -> Response | str:
        """On to the reason prompt for adding the fingerprint of the URL."""
        try:
            fingerprint = parse_fingerprint(request.params["fingerprint"])
        except ValueError:
            return Response.not_found("not a fingerprint")
        return await self._allow_prompt(request, request.params["list"], fingerprint)

    async def _allow_prompt(self, request: Request, name: str, fingerprint: str) -> Response:
        here = f"{request.base}/lists/{path(name)}/add/{digits(fingerprint)}"
        return await self.confirmations.prompt_at(
            request, here, "admin-allow", f"{name}\n{fingerprint}"
        )

    async def allow(self, request: Request) -> Response | str:
        """Ask for the reason (for the audit log), and add the fingerprint to the list."""
        name, nonce = request.params["list"], request.params["nonce"]
        try:
            fingerprint = parse_fingerprint(request.params["fingerprint"])
        except ValueError:
            return Response.not_found("not a fingerprint")
        target = f"{name}\n{fingerprint}"
        here = f"{request.base}/lists/{path(name)}"
        start = f"{here}/add/{digits(fingerprint)}"
        said = f"{short(fingerprint)} to the allow-list {shown(name, 64)}"
        if request.query is None or not request.query.strip():
            if not await self.confirmations.valid(request, "admin-allow", target, nonce):
                return self.confirmations.stale(start)
            admin = " (it makes them an admin here)" if name in self.lists else ""
            return Response.input(f"Why add {said}{admin}? (for the audit log)")
        try:
            reason = check_reason(request.query)
        except ValueError as exc:
            return Response.input(f"{shown(str(exc), 100)}; why add {said}?")
        if await self.confirmations.take(request, "admin-allow", target, nonce) is None:
            return self.confirmations.stale(start)
        added = await self._store(request).allow(name, fingerprint)
        back = link(here, f"The allow-list {name}")
        if not added:
            return self._unchanged("Already there", f"{_sentence(said)}: it is on it.", back)
        note = await self._audit(request, "allow", f"{fingerprint} on the list {name}", reason)
        return self._done("Added", f"Added {said}.{note}", back)

    async def disallow_start(self, request: Request) -> Response | str:
        """On to the confirmation of taking a fingerprint off a list."""
        try:
            fingerprint = parse_fingerprint(request.params["fingerprint"])
        except ValueError:
            return Response.not_found("not a fingerprint")
        name = request.params["list"]
        here = f"{request.base}/lists/{path(name)}/remove/{digits(fingerprint)}"
        return await self.confirmations.prompt_at(
            request, here, "admin-disallow", f"{name}\n{fingerprint}"
        )

    async def disallow(self, request: Request) -> Response | str:
        """Take the fingerprint off the list once ``yes`` is typed (not the admin's own way in)."""
        name, nonce = request.params["list"], request.params["nonce"]
        try:
            fingerprint = parse_fingerprint(request.params["fingerprint"])
        except ValueError:
            return Response.not_found("not a fingerprint")
        target = f"{name}\n{fingerprint}"
        here = f"{request.base}/lists/{path(name)}"
        start = f"{here}/remove/{digits(fingerprint)}"
        back = link(here, f"The allow-list {name}")
        said = f"{short(fingerprint)} from the allow-list {shown(name, 64)}"
        if request.query is None:
            if not await self.confirmations.valid(request, "admin-disallow", target, nonce):
                return self.confirmations.stale(start)
            return Response.input(f"Type yes to remove {said}")
        if not _yes(request.query):
            return self._unchanged("Not removed", "You did not type yes.", back)
        if self._locks_out(request, name, fingerprint):
            return self._unchanged(
                "Not removed",
                "That is how you are an admin here: removing it would shut you out of these "
                "pages (hospes allow remove, on the server, can).",
                back,
            )
        if await self.confirmations.take(request, "admin-disallow", target, nonce) is None:
            return self.confirmations.stale(start)
        if not await self._store(request).disallow(name, fingerprint):
            return self._unchanged("Not removed", "It was not on the list.", back)
        note = await self._audit(request, "disallow", f"{fingerprint} on the list {name}")
        return self._done("Removed", f"Removed {said}.{note}", back)
