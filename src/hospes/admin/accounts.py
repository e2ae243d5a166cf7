"""The admin capsule's account pages: find an account, see it, rename it, delete it.

Routes, relative to the mount point:

``/accounts``, ``/accounts/search``        accounts by name; a search by name or fingerprint
``/accounts/ID``                           one account: certificates, bans, what can be done
``/accounts/ID/rename/N``                  asks for the new name
``/accounts/ID/delete/N``                  asks for the account's name, then deletes it
``/accounts/ID/remove/FP/N``               asks for ``yes``, then removes that certificate

``N`` is a nonce issued for exactly that change (see :mod:`.capsule`); the
same URL without it redirects to a fresh one.  Bans of an account are made on
the ban pages (:mod:`.bans`), which its page links to.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..app.request import Request
from ..app.response import Response
from ..gemini.fingerprint import parse_fingerprint_prefix
from ..store import (
    NAME_RULE,
    Account,
    BanKind,
    CertificateRecord,
    InvalidName,
    LastCertificate,
    NameTaken,
    UnknownAccount,
)
from .render import digits, link, moment, preformatted, short, shown
from .shared import AdminPages, fingerprint_param, said_yes, utc_now

__all__ = ["LISTED", "AdminAccounts"]

LISTED = 100
"""Accounts a listing or a search shows (a search narrows it down)."""


class AdminAccounts(AdminPages):
    """Accounts: listing, search, one account's page; rename, delete, remove a certificate."""

    async def _account(self, request: Request) -> Account | Response:
        account = await self._store(request).account_by_id(int(request.params["id"]))
        return Response.not_found("no such account") if account is None else account

    async def accounts(self, request: Request) -> str:
        """The first accounts by name, and the search."""
        store = self._store(request)
        found = await store.search_accounts("", LISTED + 1)
        total = (await store.counts(utc_now())).accounts
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
        now = utc_now()
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
        fingerprint = fingerprint_param(request)
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
        if not said_yes(request.query):
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
