"""Accounts on first use, as pages any capsule can mount: register, link a device, certificates.

::

    app.mount("/account/", account_app(members_url="/members/"))

Routes, relative to the mount point:

``/``                        who you are here, and what you can do next
``/register``                a certificate without an account: on to the name prompt
``/register/N``              asks for a name (10) and creates the account
``/link``                    on to the link prompt
``/link/N``                  signed in: makes and shows a one-time code (after ``yes``);
                             on another device: asks for the code and links it
``/certificates``            your certificates, the one in use marked
``/certificates/remove/X``   on to the confirmation of removing certificate ``X``
``/certificates/remove/X/N`` asks for ``yes``, then removes it

Gemini has only the query to carry an answer and no POST, and any link can
be followed by mistake (or sent by an attacker), so nothing changes in
answer to a link: every change answers a 10 prompt at a URL with a nonce
``N`` the server issued to this certificate for this change
(:mod:`hospes.app.confirm`); the plain URLs only redirect there.  A
destructive action asks for the word ``yes``.  Everything a client sent
(names, common names) is passed through :func:`~hospes.gemini.escape.printable`
before it is shown.  Link codes are 50 random bits in an alphabet without
look-alike characters, stored only as a SHA-256 hash, live for ten minutes,
and are redeemed under a strict rate limit per address group and per key.

The rate limits of these pages are token buckets kept by the store
(:meth:`~hospes.store.base.Store.take_token`): in the process for SQLite, in
the database for PostgreSQL, so that a client cannot multiply its tries by
the number of nodes behind a load balancer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..app.access import STORE_UNAVAILABLE, AccessRule, Requirement, banned_response, check
from ..app.confirm import Confirmations
from ..app.request import Request
from ..app.response import Response
from ..app.routing import Application
from ..gemini.escape import printable
from ..gemini.fingerprint import PREFIX, parse_fingerprint, short_fingerprint
from ..gemini.identity import ClientIdentity
from ..gemini.protocol import Status
from ..gemini.url import quote_path
from ..policy.ratelimit import RateLimiter
from ..store import (
    NAME_RULE,
    Account,
    AlreadyRegistered,
    CertificateRecord,
    InvalidName,
    LastCertificate,
    NameTaken,
    Store,
    StoreError,
    check_name,
)
from .codes import CODE_LENGTH, code_hash, new_link_code, normalize_code

__all__ = [
    "AccountLimits",
    "AccountPages",
    "account_app",
]


@dataclass(slots=True)
class AccountLimits:
    """Rate limits of the account pages (a token bucket per client address and per key)."""

    register_rate: float = 1 / 60
    """Names submitted per second, after the burst."""
    register_burst: float = 10
    link_rate: float = 1 / 120
    """Link codes tried per second, after the burst: guessing must be hopeless."""
    link_burst: float = 5
    code_rate: float = 1 / 30
    """Link codes created per second per account, after the burst."""
    code_burst: float = 5
    code_lifetime: dt.timedelta = field(default_factory=lambda: dt.timedelta(minutes=10))
    confirmation_lifetime: dt.timedelta = field(default_factory=lambda: dt.timedelta(minutes=10))
    """How long the answer to a prompt may take (the life of its nonce)."""


class _Limit:
    """A rate limit kept by the store: one token bucket per key, under one name."""

    def __init__(self, name: str, rate: float, burst: float) -> None:
        self.name = name
        self.rate = rate
        self.burst = burst

    async def take(self, store: Store, key: str) -> float:
        """0.0 if granted, else the seconds to wait."""
        return await store.take_token(self.name, key, self.rate, self.burst, _now())


class _Pair:
    """One limiter for client address groups and one for keys: an action needs both.

    Addresses count by the group the server's own rate limits use (an IPv6
    address by its prefix); a trusted address (a proxy) has no group and is
    limited by key only, so one visitor behind it cannot block everyone.
    """

    def __init__(self, name: str, rate: float, burst: float) -> None:
        self.addresses = _Limit(f"{name}/address", rate, burst)
        self.keys = _Limit(f"{name}/key", rate, burst)

    async def take(
        self, store: Store, request: Request, identity: ClientIdentity
    ) -> Response | None:
        wait = await self.keys.take(store, identity.key_fingerprint)
        if request.address_group is not None:
            wait = max(wait, await self.addresses.take(store, str(request.address_group)))
        return None if wait == 0 else Response.slow_down(RateLimiter.seconds(wait))


def _unavailable() -> Response:
    return Response.temporary_failure("accounts are not available on this server (no store)")


def _failed(exc: StoreError) -> Response:
    return Response.temporary_failure(f"could not complete that: {printable(str(exc), 200)}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _day(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d}"


class AccountPages:
    """The handlers of the account flows; :func:`account_app` routes them."""

    def __init__(self, members_url: str = "/members/", limits: AccountLimits | None = None) -> None:
        self.members_url = members_url
        self.limits = limits or AccountLimits()
        self._register = _Pair("register", self.limits.register_rate, self.limits.register_burst)
        self._redeem = _Pair("redeem", self.limits.link_rate, self.limits.link_burst)
        self._codes = _Limit("link-code/account", self.limits.code_rate, self.limits.code_burst)
        self.confirmations = Confirmations(self.limits.confirmation_lifetime)

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    async def _banned(store: Store, request: Request) -> Response | None:
        """61 with the reason when the certificate, key or account is banned."""
        assert request.identity is not None
        ban = await store.active_ban(request.identity, request.account, _now())
        return None if ban is None else banned_response(ban)

    @staticmethod
    async def _members_only(request: Request) -> Response | None:
        """The 61 (or ban) of an ``account`` rule, pointing at this mount's register page."""
        rule = AccessRule(
            request.base or "/", Requirement.ACCOUNT, register_url=f"{request.base}/register"
        )
        return await check(rule, request, _now())

    async def _member(self, request: Request) -> tuple[Store, ClientIdentity, Account] | Response:
        """The store, certificate and account of a member; for anyone else, what to answer."""
        store, identity, account = request.store, request.identity, request.account
        assert identity is not None
        if store is None:
            return _unavailable()
        denied = await self._members_only(request)
        if denied is not None:
            return denied
        assert account is not None
        return store, identity, account

    def _already(self, request: Request, account: Account) -> str:
        return (
            "# You already have an account\n\n"
            f"This certificate belongs to the account {printable(account.name, 32)}.\n\n"
            f"=> {self.members_url} Members\n"
            f"=> {request.base}/ Your account\n"
        )

    # -- pages --------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response | str:
        """Where you stand: an account and what to do with it, or how to get one."""
        identity = request.identity
        assert identity is not None
        base, account = request.base, request.account
        if request.store is None:
            return _unavailable()
        if request.account_unknown:  # the store is down: not "no account"
            return Response.temporary_failure(STORE_UNAVAILABLE)
        if account is None:
            return (
                "# Your account\n\n"
                "This certificate has no account here yet.\n\n"
                f"=> {base}/register Register an account with this certificate\n"
                f"=> {base}/link Add this certificate to an account you already have "
                "(with a code from your other device)\n"
            )
        banned = await self._banned(request.store, request)
        if banned is not None:
            return banned
        records = await request.store.certificates(account.id)
        return (
            f"# {printable(account.name, 32)}\n\n"
            f"Member since {_day(account.created)}, signed in with "
            f"{'this certificate' if len(records) == 1 else f'{len(records)} certificates'}.\n\n"
            f"=> {self.members_url} Members\n"
            f"=> {base}/certificates Your certificates\n"
            f"=> {base}/link Link another device\n"
        )

    async def _may_register(self, request: Request) -> Response | str | None:
        """What a certificate that cannot register gets (no store, an account, a ban)."""
        store, identity = request.store, request.identity
        assert identity is not None
        if store is None:
            return _unavailable()
        if request.account is not None:
            return self._already(request, request.account)
        return await self._banned(store, request)

    async def register_start(self, request: Request) -> Response | str:
        """On to the name prompt, at a URL made for this certificate (a query here is ignored)."""
        refused = await self._may_register(request)
        if refused is not None:
            return refused
        return await self.confirmations.prompt_at(request, f"{request.base}/register", "register")

    async def register(self, request: Request) -> Response | str:
        """Ask for a name (the certificate's CN offered) and create the account."""
        refused = await self._may_register(request)
        if refused is not None:
            return refused
        store, identity = request.store, request.identity
        assert store is not None and identity is not None
        nonce, start = request.params["nonce"], f"{request.base}/register"
        default = _default_name(identity)
        if request.query is None:
            if not await self.confirmations.valid(request, "register", "", nonce):
                return self.confirmations.stale(start)
            return Response.input(_name_prompt("Choose an account name", default))
        limited = await self._register.take(store, request, identity)
        if limited is not None:
            return limited
        taken = await self.confirmations.take(request, "register", "", nonce)
        if taken is None:
            return self.confirmations.stale(start)
        name = request.query.strip() or default
        if not name:
            await taken.give_back()
            return Response.input(_name_prompt("A name is needed", None))
        shown = printable(name, 32)
        try:
            await store.register(check_name(name), identity, _now())
        except InvalidName:
            await taken.give_back()
            return Response.input(_name_prompt(f"'{shown}' cannot be a name", default))
        except NameTaken as exc:
            await taken.give_back()
            return Response.input(_name_prompt(_taken(shown, exc), None))
        except AlreadyRegistered as exc:
            account = await store.recognise(identity, _now())
            if account is None:  # registered and deleted meanwhile: let them try again
                return Response.temporary_failure(printable(str(exc), 200))
            return self._already(request, account)
        return Response.redirect(self.members_url)

    async def link_start(self, request: Request) -> Response | str:
        """On to the link prompt: making a code (with an account) or typing one (without)."""
        store = request.store
        if store is None:
            return _unavailable()
        banned = await self._banned(store, request)
        if banned is not None:
            return banned
        action, target = _link_action(request.account)
        return await self.confirmations.prompt_at(request, f"{request.base}/link", action, target)

    async def link(self, request: Request) -> Response | str:
        """With an account: a fresh one-time code, after ``yes``.  Without: redeem one."""
        store, identity = request.store, request.identity
        assert identity is not None
        if store is None:
            return _unavailable()
        banned = await self._banned(store, request)
        if banned is not None:
            return banned
        nonce, start = request.params["nonce"], f"{request.base}/link"
        account = request.account
        action, target = _link_action(account)
        if request.query is None:
            if not await self.confirmations.valid(request, action, target, nonce):
                return self.confirmations.stale(start)
            if account is not None:
                return Response.input(
                    f"Type yes to make a one-time code that links another device to "
                    f"{printable(account.name, 32)} (it cancels the previous code)"
                )
            return Response.input("Type the link code shown on your signed-in device")
        if account is not None:
            return await self._make_code(store, request, account, nonce)
        limited = await self._redeem.take(store, request, identity)
        if limited is not None:
            return limited
        taken = await self.confirmations.take(request, action, target, nonce)
        if taken is None:
            return self.confirmations.stale(start)
        code = normalize_code(request.query)
        if code is None:
            await taken.give_back()
            return Response.input(
                f"A code has {CODE_LENGTH} letters and digits, like 7KX2M-Q9DFA; try again"
            )
        try:
            linked = await store.redeem_link_code(code_hash(code), identity, _now())
        except AlreadyRegistered as exc:
            return Response(Status.CERTIFICATE_NOT_AUTHORISED, printable(str(exc), 200))
        if linked is None:
            await taken.give_back()
            return Response.input("That code is wrong, used or expired; type it again")
        return Response.redirect(self.members_url)

    async def _make_code(
        self, store: Store, request: Request, account: Account, nonce: str
    ) -> Response | str:
        assert request.query is not None
        action, target = _link_action(account)
        back = f"=> {request.base}/ Your account\n"
        if request.query.strip().lower() != "yes":
            return "# No code made\n\nYou did not type yes, so nothing changed.\n\n" + back
        taken = await self.confirmations.take(request, action, target, nonce)
        if taken is None:
            return self.confirmations.stale(f"{request.base}/link")
        wait = await self._codes.take(store, str(account.id))
        if wait:
            await taken.give_back()
            return Response.slow_down(RateLimiter.seconds(wait))
        return await self._show_code(store, request, account)

    async def _show_code(self, store: Store, request: Request, account: Account) -> str:
        code = new_link_code()
        lifetime = self.limits.code_lifetime
        canonical = normalize_code(code)
        assert canonical is not None
        await store.create_link_code(account.id, code_hash(canonical), _now() + lifetime)
        minutes = max(1, int(lifetime.total_seconds() // 60))
        url = request.url.with_path(quote_path(f"{request.base}/link"), None)
        return (
            "# Link another device\n\n"
            "On the other device (or in another identity of your client), open\n"
            f"=> {url}\n"
            "and type this code when asked:\n\n"
            f"```\n{code}\n```\n\n"
            f"It works once, for {minutes} minutes. Making a new code cancels this one. "
            "Keep it to yourself: whoever types it joins your account.\n\n"
            f"=> {request.base}/certificates Your certificates\n"
        )

    async def certificates(self, request: Request) -> Response | str:
        """The account's certificates, each removable but the one in use."""
        member = await self._member(request)
        if isinstance(member, Response):
            return member
        store, identity, account = member
        records = await store.certificates(account.id)
        lines = [f"# Certificates of {printable(account.name, 32)}", ""]
        for record in records:
            in_use = record.fingerprint == identity.fingerprint
            same_key = record.key_fingerprint == identity.key_fingerprint
            name = printable(record.common_name or "(no name)", 64)
            lines += [
                f"## {name}{' (in use now)' if in_use else ''}",
                "```",
                f"certificate  {record.fingerprint}",
                f"key          {record.key_fingerprint}"
                + ("  (same key as the one in use)" if same_key and not in_use else ""),
                f"valid        {_day(record.not_before)} to {_day(record.not_after)}",
                f"first seen   {_day(record.first_seen)}, last seen {_day(record.last_seen)}",
                "```",
            ]
            if not in_use and len(records) > 1:
                hex_digits = record.fingerprint.removeprefix(PREFIX)
                lines.append(
                    f"=> {request.base}/certificates/remove/{hex_digits} "
                    f"Remove {name} ({short_fingerprint(record.fingerprint)}…)"
                )
            lines.append("")
        lines += [
            f"=> {request.base}/link Link another device",
            f"=> {request.base}/ Your account",
        ]
        return "\n".join(lines) + "\n"

    async def _removable(
        self, request: Request
    ) -> tuple[Store, Account, CertificateRecord] | Response | str:
        """The certificate ``request`` may remove from its account, or what to answer instead."""
        member = await self._member(request)
        if isinstance(member, Response):
            return member
        store, identity, account = member
        try:
            target = parse_fingerprint(request.params["fingerprint"])
        except ValueError:
            return Response.not_found("no such certificate")
        if target == identity.fingerprint:
            return (
                "# Not removed\n\nThat is the certificate you are using now. To remove it, "
                "sign in with another certificate of this account.\n\n"
                f"=> {request.base}/certificates Your certificates\n"
            )
        records = {record.fingerprint: record for record in await store.certificates(account.id)}
        record = records.get(target)
        if record is None:
            return Response.not_found("no such certificate in your account")
        return store, account, record

    async def remove_start(self, request: Request) -> Response | str:
        """On to the confirmation of removing a certificate (a query here is ignored)."""
        found = await self._removable(request)
        if not isinstance(found, tuple):
            return found
        _, _, record = found
        here = f"{request.base}/certificates/remove/{request.params['fingerprint']}"
        return await self.confirmations.prompt_at(request, here, "remove", record.fingerprint)

    async def remove(self, request: Request) -> Response | str:
        """Remove one of the account's other certificates once the user typed ``yes``."""
        found = await self._removable(request)
        if not isinstance(found, tuple):
            return found
        store, account, record = found
        nonce, target = request.params["nonce"], record.fingerprint
        start = f"{request.base}/certificates/remove/{request.params['fingerprint']}"
        back = f"=> {request.base}/certificates Your certificates\n"
        name = printable(record.common_name or "(no name)", 40)
        if request.query is None:
            if not await self.confirmations.valid(request, "remove", target, nonce):
                return self.confirmations.stale(start)
            return Response.input(
                f"Type yes to remove the certificate {name} ({short_fingerprint(target)}…) "
                "from your account"
            )
        if request.query.strip().lower() != "yes":
            return "# Not removed\n\nYou did not type yes, so nothing changed.\n\n" + back
        if await self.confirmations.take(request, "remove", target, nonce) is None:
            return self.confirmations.stale(start)
        try:
            await store.remove_certificate(account.id, target)
        except LastCertificate as exc:
            return f"# Not removed\n\n{printable(str(exc))}\n\n" + back
        except StoreError as exc:
            return _failed(exc)
        return Response.redirect(f"{request.base}/certificates")


def _link_action(account: Account | None) -> tuple[str, str]:
    """The confirmation of the link pages: making a code for an account, or redeeming one."""
    return ("link", "") if account is None else ("link-code", str(account.id))


def _taken(shown: str, error: NameTaken) -> str:
    """The prompt's lead for a taken name, naming the account it looks like (if not the same)."""
    if error.existing is None:
        return f"'{shown}' is taken"
    return f"'{shown}' is too much like the existing name '{printable(error.existing, 32)}'"


def _default_name(identity: ClientIdentity) -> str | None:
    """The certificate's common name, when it would make a valid account name."""
    name = (identity.common_name or "").strip()
    try:
        return check_name(name)
    except InvalidName:
        return None


def _name_prompt(lead: str, default: str | None) -> str:
    offer = f"; leave it empty for '{default}'" if default else ""
    return f"{lead}: {NAME_RULE}{offer}"


def account_app(members_url: str = "/members/", limits: AccountLimits | None = None) -> Application:
    """The account pages as an :class:`~hospes.app.routing.Application` to mount (``/account/``).

    ``members_url`` is where a new or newly linked member is sent.  The rate
    limits' buckets are kept by the request's store (every account application
    on one store shares them; with PostgreSQL, every node does).
    """
    pages = AccountPages(members_url, limits)
    app = Application()
    app.add_route("/", pages.overview, requires="certificate")
    app.add_route("/register", pages.register_start, requires="certificate")
    app.add_route("/register/{nonce}", pages.register, requires="certificate")
    app.add_route("/link", pages.link_start, requires="certificate")
    app.add_route("/link/{nonce}", pages.link, requires="certificate")
    # "certificate" here; the pages apply the account rule themselves, since only
    # at request time is the mount point (and so the register page's URL) known.
    app.add_route("/certificates", pages.certificates, requires="certificate")
    app.add_route("/certificates/remove/{fingerprint}", pages.remove_start, requires="certificate")
    app.add_route(
        "/certificates/remove/{fingerprint}/{nonce}", pages.remove, requires="certificate"
    )
    return app
