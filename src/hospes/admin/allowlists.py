"""The admin capsule's allow-list pages: the lists, one list, a fingerprint added or removed.

Routes, relative to the mount point:

``/lists``, ``/lists/NAME``                allow-lists; one list's fingerprints
``/lists/NAME/add``                        asks for a fingerprint, then ``…/add/FP/N``
``/lists/NAME/add/FP/N``                   asks for the reason, then adds it
``/lists/NAME/remove/FP/N``                asks for ``yes``, then removes it

``FP`` is a fingerprint's 64 hex digits, ``N`` a nonce issued for exactly
that change.  An admin cannot take away the entry that makes them one.
"""

from __future__ import annotations

from ..app.request import Request
from ..app.response import Response
from ..store.bans import check_reason
from .render import digits, link, path, short, shown
from .shared import AdminPages, fingerprint_param, said_yes, sentence

__all__ = ["AdminAllowLists"]


class AdminAllowLists(AdminPages):
    """Allow-lists: every list with its size, one list, an entry added or removed."""

    def _locks_out(self, request: Request, list_name: str, fingerprint: str) -> bool:
        """Whether taking ``fingerprint`` off ``list_name`` shuts the admin asking out."""
        identity = request.identity
        assert identity is not None
        own = {identity.fingerprint, identity.key_fingerprint}
        return list_name in self.lists and fingerprint in own and not (own & self.admins)

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
        fingerprint = fingerprint_param(request)
        return await self._allow_prompt(request, request.params["list"], fingerprint)

    async def _allow_prompt(self, request: Request, name: str, fingerprint: str) -> Response:
        here = f"{request.base}/lists/{path(name)}/add/{digits(fingerprint)}"
        return await self.confirmations.prompt_at(
            request, here, "admin-allow", f"{name}\n{fingerprint}"
        )

    async def allow(self, request: Request) -> Response | str:
        """Ask for the reason (for the audit log), and add the fingerprint to the list."""
        name, nonce = request.params["list"], request.params["nonce"]
        fingerprint = fingerprint_param(request)
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
            return self._unchanged("Already there", f"{sentence(said)}: it is on it.", back)
        note = await self._audit(request, "allow", f"{fingerprint} on the list {name}", reason)
        return self._done("Added", f"Added {said}.{note}", back)

    async def disallow_start(self, request: Request) -> Response | str:
        """On to the confirmation of taking a fingerprint off a list."""
        fingerprint = fingerprint_param(request)
        name = request.params["list"]
        here = f"{request.base}/lists/{path(name)}/remove/{digits(fingerprint)}"
        return await self.confirmations.prompt_at(
            request, here, "admin-disallow", f"{name}\n{fingerprint}"
        )

    async def disallow(self, request: Request) -> Response | str:
        """Take the fingerprint off the list once ``yes`` is typed (not the admin's own way in)."""
        name, nonce = request.params["list"], request.params["nonce"]
        fingerprint = fingerprint_param(request)
        target = f"{name}\n{fingerprint}"
        here = f"{request.base}/lists/{path(name)}"
        start = f"{here}/remove/{digits(fingerprint)}"
        back = link(here, f"The allow-list {name}")
        said = f"{short(fingerprint)} from the allow-list {shown(name, 64)}"
        if request.query is None:
            if not await self.confirmations.valid(request, "admin-disallow", target, nonce):
                return self.confirmations.stale(start)
            return Response.input(f"Type yes to remove {said}")
        if not said_yes(request.query):
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
