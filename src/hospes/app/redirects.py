"""The redirect table: old paths sent elsewhere (30, 31) or declared gone (52).

A :class:`RedirectRule` is matched on the canonical decoded path, as access rules
are (:func:`~hospes.app.access.path_matches`), and before them: a moved page
answers its redirect to everyone, with or without a certificate.  The order
is fixed: an exact redirect of the path, else the longest matching prefix (a
redirect for the request's host before one for every host at the same
length).  A prefix redirect keeps the rest of the path (``/old/`` → ``/new/``
sends ``/old/a/b`` to ``/new/a/b``); both keep the request's query (unless the target has one).
:class:`Redirects` indexes a configuration's table per host once, so a request
costs one dictionary look-up per segment of its path, however long the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..gemini.protocol import Status
from ..gemini.url import quote_path
from .access import path_matches
from .response import Response

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "RedirectRule", "Redirects", "redirect_chain"]

REDIRECT_STATUSES = (Status.REDIRECT_TEMPORARY, Status.REDIRECT_PERMANENT, Status.GONE)
"""What a redirect may answer: 30 (temporary), 31 (permanent), 52 (gone)."""
MAX_REDIRECTS = 5
"""Redirects in a row a client follows (the specification's suggestion)."""


@dataclass(frozen=True, slots=True)
class RedirectRule:
    """``path`` (a prefix, or with ``exact`` one path) answered ``status`` with ``target``."""

    path: str
    """Canonical and decoded, as requests' paths are compared."""
    target: str | None
    """A decoded path (``/new/``) or an absolute URL; None for 52."""
    status: int = Status.REDIRECT_PERMANENT
    exact: bool = False
    hosts: frozenset[str] = frozenset()
    """The hostnames it applies to; empty: every hostname."""

    def __post_init__(self) -> None:
        if self.status not in REDIRECT_STATUSES:
            raise ValueError(f"a redirect answers 30, 31 or 52, not {self.status}")
        if (self.target is None) != (self.status == Status.GONE):
            raise ValueError("30 and 31 need a target; 52 (gone) has none")
        if not self.path.startswith("/"):
            raise ValueError(f"a redirect's path starts with '/', not {self.path!r}")

    @property
    def relative(self) -> bool:
        """Whether the target is a path on this capsule (not an absolute URL)."""
        return self.target is not None and self.target.startswith("/")

    def applies_to(self, host: str | None) -> bool:
        """Whether this applies on ``host`` (None: a host no redirect names)."""
        return not self.hosts or (host is not None and host in self.hosts)

    def covers(self, path: str) -> bool:
        """Whether a request for the canonical decoded ``path`` is redirected by this."""
        return path == self.path if self.exact else path_matches(self.path, path)

    def destination(self, path: str) -> str | None:
        """Where ``path`` (which this covers) goes, as a URL: None for 52.

        A prefix's rest of the path is appended; a path on this capsule is
        percent-encoded (the table holds it decoded).
        """
        target = self.target
        if target is None:
            return None
        rest = "" if self.exact else path[len(self.path.rstrip("/")) :]
        if self.relative:
            return quote_path(self._joined(target, rest))
        return self._joined(target, quote_path(rest))

    def destination_path(self, path: str) -> str | None:
        """The decoded path on this capsule that ``path`` goes to, or None (52, another URL)."""
        if self.target is None or not self.relative:
            return None
        return self._joined(self.target, "" if self.exact else path[len(self.path.rstrip("/")) :])

    @staticmethod
    def _joined(target: str, rest: str) -> str:
        return target.rstrip("/") + rest if rest else target


@dataclass(frozen=True, slots=True)
class _Table:
    """One host's redirects: exact ones by path, prefixes by path without the trailing '/'."""

    exact: dict[str, RedirectRule]
    prefixes: dict[str, RedirectRule]

    def find(self, path: str) -> RedirectRule | None:
        found = self.exact.get(path)
        if found is not None or not self.prefixes:
            return found
        # A prefix covers the path when it is the path or one of its ancestors (what
        # path_matches says): one look-up per segment, longest first, however many rules.
        base = path.rstrip("/")
        while True:
            found = self.prefixes.get(base)
            if found is not None or not base:
                return found
            base = base[: base.rfind("/")]


def _table(redirects: Iterable[RedirectRule]) -> _Table:
    # A redirect for the host comes after (so overrides) one for every host.
    ordered = sorted(redirects, key=lambda redirect: bool(redirect.hosts))
    exact = {redirect.path: redirect for redirect in ordered if redirect.exact}
    prefixes = {redirect.path.rstrip("/"): redirect for redirect in ordered if not redirect.exact}
    return _Table(exact, prefixes)


class Redirects:
    """A redirect table, sorted per hostname once; false when empty."""

    def __init__(self, redirects: Iterable[RedirectRule] = ()) -> None:
        self.redirects = tuple(redirects)
        self._every = _table(redirect for redirect in self.redirects if redirect.applies_to(None))
        named = {host for redirect in self.redirects for host in redirect.hosts}
        self._by_host = {
            host: _table(redirect for redirect in self.redirects if redirect.applies_to(host))
            for host in named
        }

    def __bool__(self) -> bool:
        return bool(self.redirects)

    def find(self, host: str | None, path: str) -> RedirectRule | None:
        """The redirect governing ``path`` (canonical, decoded) on ``host``, or None.

        ``host`` None: a host no redirect names.
        """
        table = self._every if host is None else self._by_host.get(host, self._every)
        return table.find(path)

    def response(self, host: str, path: str, query: str | None = None) -> Response | None:
        """The 30, 31 or 52 a request for ``path`` gets on ``host`` (``query`` kept), or None."""
        redirect = self.find(host, path)
        if redirect is None:
            return None
        target = redirect.destination(path)
        if target is None:
            return Response(Status.GONE, "gone")
        if query is not None and "?" not in target:
            target += f"?{query}"
        return Response(redirect.status, target)

    def hosts(self) -> Iterator[str | None]:
        """Every host named by a redirect, then None (standing for every other host)."""
        yield from self._by_host
        yield None


def redirect_chain(redirects: Iterable[RedirectRule]) -> list[str] | None:
    """A chain of redirects clients cannot follow to its end, as the paths it visits; or None.

    Every redirect to a path of this capsule is followed, on every host it
    applies to; a chain that comes back to a path it visited loops forever,
    and one of more than :data:`MAX_REDIRECTS` redirects is given up by
    clients (the specification suggests 5 at most).
    """
    table = Redirects(redirects)
    for host in table.hosts():
        for start in table.redirects:
            if not start.applies_to(host):
                continue
            seen = [start.path]
            current: RedirectRule | None = start
            while current is not None:
                path = current.destination_path(seen[-1])
                if path is None:
                    break
                seen.append(path)
                if path in seen[:-1] or len(seen) > MAX_REDIRECTS + 1:
                    return seen
                current = table.find(host, path)
    return None
