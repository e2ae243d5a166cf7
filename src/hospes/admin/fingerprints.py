"""The admin capsule's page about one fingerprint: everything the store knows of it.

Route, relative to the mount point: ``/fingerprints/FP`` (``FP`` a
fingerprint's 64 hex digits), linked from the overview's refusals and from the
allow-lists: the accounts, bans and allow-lists that hold it, and links to
ban it or add it to a list (each of which asks before it changes anything).
"""

from __future__ import annotations

from ..app.request import Request
from ..app.response import Response
from .render import digits, link, path, short
from .shared import AdminPages, fingerprint_param

__all__ = ["AdminFingerprints"]


class AdminFingerprints(AdminPages):
    """What the store knows of a certificate or key fingerprint, and what can be done."""

    async def fingerprint(self, request: Request) -> Response | str:
        """What the store knows of a fingerprint (accounts, bans, lists), and what to do."""
        value = fingerprint_param(request)
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
