"""What the admin capsule's pages share: who is an admin, the prompts, the store, the audit log.

Each group of pages (:mod:`.accounts`, :mod:`.bans`, :mod:`.allowlists`,
:mod:`.fingerprints`) is a subclass of :class:`AdminPages`: the admins and
lists that admit an admin, the issued prompts of :mod:`hospes.app.confirm`,
and the pieces every page writes the same way (the result of a change, its
audit entry, the list of bans, a typed fingerprint resolved).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence

from ..app.confirm import Confirmations
from ..app.request import Request
from ..app.response import Response
from ..gemini.fingerprint import parse_fingerprint, parse_fingerprint_prefix
from ..gemini.protocol import GeminiError, Status
from ..store import Ban, BanKind, Store, StoreError
from .render import digits, link, moment, short, shown

__all__ = ["AdminPages", "fingerprint_param", "said_yes", "sentence", "utc_now"]

log = logging.getLogger("hospes.admin")


def utc_now() -> dt.datetime:
    """The time now, in UTC."""
    return dt.datetime.now(dt.UTC)


def fingerprint_param(request: Request) -> str:
    """The route's ``{fingerprint}``, canonical; a 51 (raised) when it is not one."""
    try:
        return parse_fingerprint(request.params["fingerprint"])
    except ValueError:
        raise GeminiError(Status.NOT_FOUND, "not a fingerprint") from None


def said_yes(answer: str) -> bool:
    """Whether a confirmation prompt was answered ``yes`` (any case, spaces around)."""
    return answer.strip().lower() == "yes"


def sentence(text: str) -> str:
    """``text`` with its first letter made a capital (and nothing else changed)."""
    return text[:1].upper() + text[1:]


class AdminPages:
    """What every group of the admin capsule's pages holds and does.

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
                utc_now(), identity.fingerprint, action, target, reason
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

    @staticmethod
    def _ban_lines(request: Request, bans: Sequence[Ban], names: dict[str, str]) -> list[str]:
        now, lines = utc_now(), []
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
