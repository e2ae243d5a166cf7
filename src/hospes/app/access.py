"""Access rules: which resources need a certificate, and the 60 / 61 / 62 decision.

A rule names a path prefix and a requirement.  The decision is always taken
in the same order: no certificate → 60; a certificate that is not valid → 62;
a valid certificate that is banned or not authorised → 61; otherwise the
resource.  The same :func:`check` serves the server's configured rules and
the per-route requirements of applications.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from ..gemini.escape import printable
from ..gemini.protocol import MAX_META_BYTES, Status
from .request import Request
from .response import Response

if TYPE_CHECKING:
    from ..store import Ban

__all__ = [
    "STORE_UNAVAILABLE",
    "AccessPolicy",
    "AccessRule",
    "Requirement",
    "banned_response",
    "check",
    "path_matches",
]

STORE_UNAVAILABLE = "the identity store is unavailable; try again in a minute"


class Requirement(StrEnum):
    """What a resource demands of the client."""

    CERTIFICATE = "certificate"
    """Any valid certificate."""
    ALLOWLIST = "allowlist"
    """A certificate (or key) on the rule's fingerprints or named lists."""
    ACCOUNT = "account"
    """A certificate belonging to a registered account."""


@dataclass(frozen=True, slots=True)
class AccessRule:
    """A requirement for every path under ``path``."""

    path: str
    require: Requirement
    fingerprints: frozenset[str] = frozenset()
    """Canonical certificate or key fingerprints allowed by an ``allowlist`` rule."""
    lists: tuple[str, ...] = ()
    """Names of store allow-lists an ``allowlist`` rule also accepts."""
    register_url: str | None = None
    """Where a person without an account can create one (said in the 61 of ``account`` rules)."""
    hosts: frozenset[str] = frozenset()
    """The hostnames the rule applies to; empty: every hostname."""

    def applies_to(self, host: str | None) -> bool:
        """Whether the rule applies on ``host`` (None: a host no rule names)."""
        return not self.hosts or (host is not None and host in self.hosts)


def _longest_first(rules: Iterable[AccessRule]) -> list[AccessRule]:
    """Longest prefix first; at one length, a rule for some hosts before one for every host."""
    return sorted(
        rules, key=lambda rule: (len(rule.path.rstrip("/")), bool(rule.hosts)), reverse=True
    )


def path_matches(prefix: str, path: str) -> bool:
    """Whether ``path`` is at or below ``prefix``, segment-wise.

    ``/private`` and ``/private/`` both cover ``/private``, ``/private/`` and
    ``/private/x``, never ``/privateer``.
    """
    base = prefix.rstrip("/")
    if not base:
        return True
    return path == base or path.startswith(base + "/")


class AccessPolicy:
    """A set of rules; the most specific (longest) matching prefix wins.

    Rules may be limited to some hostnames (:attr:`AccessRule.hosts`): each
    host's list is sorted once, here, its own rules before rules for every
    host of the same length.  ``register_urls`` gives, per hostname, the
    register page its ``account`` rules point to when they name none.
    """

    def __init__(
        self, rules: Iterable[AccessRule] = (), *, register_urls: Mapping[str, str] | None = None
    ) -> None:
        self.rules = _longest_first(rules)
        urls = register_urls or {}
        named = {host for rule in self.rules for host in rule.hosts} | set(urls)
        self._every = self._for(None, None)
        self._by_host = {host: self._for(host, urls.get(host)) for host in named}

    def _for(self, host: str | None, register_url: str | None) -> list[AccessRule]:
        rules = [rule for rule in self.rules if rule.applies_to(host)]
        if register_url is not None:
            rules = [
                replace(rule, register_url=register_url)
                if rule.require is Requirement.ACCOUNT and rule.register_url is None
                else rule
                for rule in rules
            ]
        return rules

    def rule_for(self, path: str, host: str | None = None) -> AccessRule | None:
        """The rule that governs ``path`` (a canonical decoded path) on ``host``, or None.

        ``host`` None: a host no rule names (only rules for every host apply).
        """
        rules = self._every if host is None else self._by_host.get(host, self._every)
        for rule in rules:
            if path_matches(rule.path, path):
                return rule
        return None

    def __bool__(self) -> bool:
        return bool(self.rules)


async def check(rule: AccessRule, request: Request, now: dt.datetime) -> Response | None:
    """The 6x response ``request`` gets under ``rule``, or None when it may proceed.

    ``request.account`` must already be resolved for ``account`` rules.
    """
    if request.identity is None:
        if request.certificate_problem is not None:
            return Response(Status.CERTIFICATE_NOT_VALID, request.certificate_problem)
        return Response(
            Status.CERTIFICATE_REQUIRED,
            "this page needs a client certificate: create one in your client and reload",
        )
    if rule.require is Requirement.CERTIFICATE:
        return None
    identity = request.identity
    store = request.store
    if store is not None:
        ban = await store.active_ban(identity, request.account, now)
        if ban is not None:
            return banned_response(ban)
    if rule.require is Requirement.ALLOWLIST:
        if (
            identity.fingerprint in rule.fingerprints
            or identity.key_fingerprint in rule.fingerprints
        ):
            return None
        if rule.lists and store is not None and await store.is_allowed(rule.lists, identity):
            return None
        if rule.lists:  # the admin's exact command: the list to add to, and what
            ask = f"to run: hospes allow add {printable(rule.lists[0], 64)} {identity.fingerprint}"
        else:
            ask = f"to add {identity.fingerprint}"
        return Response(
            Status.CERTIFICATE_NOT_AUTHORISED,
            f"your certificate is not on this page's allow-list; ask the capsule's admin {ask}",
        )
    if request.account is None:
        if request.account_unknown:  # the store could not say: not "no account"
            return Response(Status.TEMPORARY_FAILURE, STORE_UNAVAILABLE)
        where = f": register at {rule.register_url}" if rule.register_url else ""
        return Response(
            Status.CERTIFICATE_NOT_AUTHORISED,
            f"this page is for members; your certificate has no account{where}",
        )
    return None


def banned_response(ban: Ban) -> Response:
    """The 61 of a ban: until when, and why.

    The reason is the admin's text, told to the client: it is escaped
    (:func:`~hospes.gemini.escape.printable`), so no CR, LF, escape sequence
    or bidi override reaches the header or the visitor's terminal, and cut to
    fit the header.
    """
    until = "" if ban.until is None else f" until {ban.until:%Y-%m-%d %H:%M} UTC"
    meta = f"banned{until}: {printable(ban.reason, 200)}"
    encoded = meta.encode("utf-8")
    if len(encoded) > MAX_META_BYTES:  # escapes take up to 8 bytes a character
        meta = encoded[: MAX_META_BYTES - 3].decode("utf-8", "ignore") + "…"
    return Response(Status.CERTIFICATE_NOT_AUTHORISED, meta)
