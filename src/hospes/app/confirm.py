"""Changes that only a prompt the server issued can make: single-use nonces per certificate.

Gemini has no POST: a page changes something in answer to a request, and any
link can be a request.  If ``/account/link?CODE`` redeemed a code, an attacker
could send a victim that link and attach the victim's certificate to the
attacker's account.  So every change is made in answer to a prompt the server
issued to *this* certificate, at a URL nobody else can know::

    /account/link            → 30 /account/link/<nonce>     (issue: a nonce for this
                                                              certificate and action)
    /account/link/<nonce>    → 10 Type the link code         (valid: the prompt)
    /account/link/<nonce>?C  → the change                    (take: consumed once)

A nonce is 128 random bits, bound to (certificate fingerprint, action,
target); the store keeps only its SHA-256, for ``lifetime`` (10 minutes by
default), so it works across worker processes and servers sharing a store.
It is consumed by the change it allows: a replay, another certificate's
nonce, an expired one or a crafted one changes nothing.  An answer that
changes nothing (a wrong code, a taken name) gives it back, so the visitor
can answer the prompt again.  A crawler, or a visitor following a link,
reaches at most the prompt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from ..store import Confirmation, Store
from .request import Request
from .response import Response

__all__ = ["Confirmations", "Taken"]

_NONCE = re.compile(r"\A[A-Za-z0-9_-]{22}\Z")
"""What :func:`secrets.token_urlsafe` makes of 16 bytes: anything else was never issued."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Taken:
    """A consumed nonce, which the caller gives back if its change did not happen."""

    store: Store
    confirmation: Confirmation
    expires: dt.datetime

    async def give_back(self) -> None:
        """Make the nonce valid again until its original expiry: nothing changed."""
        await self.store.create_confirmation(self.confirmation, self.expires, _now())


class Confirmations:
    """Issues and checks the nonces of one application's prompts.

    Every method needs a request with a valid certificate and a store (the
    account pages check both first).
    """

    def __init__(self, lifetime: dt.timedelta = dt.timedelta(minutes=10)) -> None:
        self.lifetime = lifetime

    @staticmethod
    def _confirmation(request: Request, action: str, target: str, nonce: str) -> Confirmation:
        assert request.identity is not None
        digest = hashlib.sha256(nonce.encode("ascii", "replace")).digest()
        return Confirmation(digest, request.identity.fingerprint, action, target)

    @staticmethod
    def _store(request: Request) -> Store:
        if request.store is None or request.identity is None:
            raise ValueError("confirmations need a store and a client certificate")
        return request.store

    async def issue(self, request: Request, action: str, target: str = "") -> str:
        """A fresh nonce for ``request``'s certificate, ``action`` and ``target``, stored hashed."""
        store = self._store(request)
        nonce = secrets.token_urlsafe(16)
        now = _now()
        confirmation = self._confirmation(request, action, target, nonce)
        await store.create_confirmation(confirmation, now + self.lifetime, now)
        return nonce

    async def prompt_at(
        self, request: Request, prefix: str, action: str, target: str = ""
    ) -> Response:
        """``30`` to ``prefix/<nonce>``, where the prompt for ``action`` on ``target`` is asked."""
        nonce = await self.issue(request, action, target)
        return Response.redirect(f"{prefix.rstrip('/')}/{nonce}")

    async def valid(self, request: Request, action: str, target: str, nonce: str) -> bool:
        """Whether ``nonce`` is live, issued to this certificate for ``action`` on ``target``."""
        store = self._store(request)
        if _NONCE.match(nonce) is None:
            return False
        return await store.confirmation_valid(
            self._confirmation(request, action, target, nonce), _now()
        )

    async def take(self, request: Request, action: str, target: str, nonce: str) -> Taken | None:
        """Consume ``nonce`` if it is valid (see :meth:`valid`); None if it is not."""
        store = self._store(request)
        if _NONCE.match(nonce) is None:
            return None
        confirmation = self._confirmation(request, action, target, nonce)
        expires = await store.take_confirmation(confirmation, _now())
        return None if expires is None else Taken(store, confirmation, expires)

    def stale(self, start: str) -> str:
        """The page for a nonce that is not (or no longer) valid: nothing changed, start again."""
        minutes = max(1, int(self.lifetime.total_seconds() // 60))
        return (
            "# This confirmation is not valid\n\n"
            "Nothing changed. The page you followed was made for another certificate, "
            f"was used already, or is more than {minutes} minutes old.\n\n"
            f"=> {start} Start again\n"
        )
