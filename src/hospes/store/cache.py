"""The request path's reads of the identity store, answered from memory until the store changes.

Three questions are asked on requests (:meth:`~hospes.store.base.Store.recognise`,
``active_ban``, ``is_allowed``) and their answers are kept here:

* **Invalidation.** The cache is given a function that returns the store's
  change counter, any value that differs after a change by anyone (SQLite:
  ``PRAGMA data_version``; a shared store: a counter bumped by its change
  notifications).  Every lookup reads it first and forgets every answer when
  it moved, so a change made by the admin CLI or another process applies to
  the next request.  Answers may also expire by time: a recognised
  certificate when its next ``last_seen`` update is due, a ban when it ends.
* **Races.** An answer is stored with the :attr:`ReadCache.generation` read
  when its lookup missed; if the cache was emptied meanwhile, the answer may
  predate the change that emptied it and is dropped instead of stored.
* **Bounds.** Each question keeps at most ``size`` answers; a full table
  starts over (simpler than LRU, and rare: 8192 certificates seen between two
  changes of the store).

Not thread-safe: one cache belongs to one event loop's thread.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar

from ..gemini.identity import ClientIdentity
from .base import Store
from .models import Account, Ban

__all__ = ["DEFAULT_SIZE", "MISS", "CachedStore", "Miss", "ReadCache"]

T = TypeVar("T")

DEFAULT_SIZE = 8192
"""Answers kept per question."""


class _Miss(enum.Enum):
    MISS = "miss"


MISS: Final = _Miss.MISS
"""What a lookup returns when the cache does not know the answer (None is an answer)."""
Miss: TypeAlias = Literal[_Miss.MISS]


_Entry: TypeAlias = tuple[T, dt.datetime | None]
"""An answer and the moment it stops being valid (None: only a change of the store ends it)."""


class ReadCache:
    """Answers of ``recognise``, ``active_ban`` and ``is_allowed``, until ``version`` moves.

    Use: look up; on :data:`MISS`, read :attr:`generation`, ask the store,
    then ``remember_*`` the answer with that generation.  The lookups are on
    every request, so each is written out in full: shared helpers would add a
    few hundred nanoseconds to a hit that costs about three microseconds.
    """

    def __init__(self, version: Callable[[], Hashable], *, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("a cache needs room for at least one answer")
        self._version = version
        self._seen: Hashable = object()  # equal to no version: the first lookup starts afresh
        self._size = size
        self.generation = 0
        """Counts the times the cache was emptied because the store changed."""
        self._recognised: dict[str, _Entry[Account | None]] = {}
        self._bans: dict[Hashable, _Entry[Ban | None]] = {}
        self._allowed: dict[Hashable, _Entry[bool]] = {}

    def _forget(self, version: Hashable) -> None:
        self._seen = version
        self.generation += 1
        self._recognised.clear()
        self._bans.clear()
        self._allowed.clear()

    def _put(self, table: dict[Any, _Entry[T]], key: Hashable, entry: _Entry[T]) -> None:
        if len(table) >= self._size:
            table.clear()
        table[key] = entry

    # -- recognise ----------------------------------------------------------------------

    def recognised(self, identity: ClientIdentity, now: dt.datetime) -> Account | Miss | None:
        """The account of ``identity`` (None: a stranger), or :data:`MISS`."""
        version = self._version()
        if version != self._seen:
            self._forget(version)
        entry = self._recognised.get(identity.fingerprint)
        if entry is None or (entry[1] is not None and now >= entry[1]):
            return MISS
        return entry[0]

    def remember_recognised(
        self,
        generation: int,
        identity: ClientIdentity,
        account: Account | None,
        fresh_until: dt.datetime | None,
    ) -> None:
        """Keep a ``recognise`` answer until ``fresh_until`` (None: until the store changes)."""
        if generation == self.generation:
            self._put(self._recognised, identity.fingerprint, (account, fresh_until))

    # -- active_ban ---------------------------------------------------------------------

    def active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | Miss | None:
        """The ban in force on ``identity`` or ``account`` (None: none), or :data:`MISS`."""
        version = self._version()
        if version != self._seen:
            self._forget(version)
        entry = self._bans.get(_ban_key(identity, account))
        if entry is None or (entry[1] is not None and now >= entry[1]):
            return MISS
        return entry[0]

    def remember_ban(
        self, generation: int, identity: ClientIdentity, account: Account | None, ban: Ban | None
    ) -> None:
        """Keep an ``active_ban`` answer; a ban is forgotten when it ends."""
        if generation == self.generation:
            until = None if ban is None else ban.until
            self._put(self._bans, _ban_key(identity, account), (ban, until))

    # -- is_allowed ---------------------------------------------------------------------

    def is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool | Miss:
        """Whether ``identity`` is on one of ``lists``, or :data:`MISS`."""
        version = self._version()
        if version != self._seen:
            self._forget(version)
        entry = self._allowed.get(_allowed_key(lists, identity))
        return MISS if entry is None else entry[0]

    def remember_allowed(
        self, generation: int, lists: Sequence[str], identity: ClientIdentity, allowed: bool
    ) -> None:
        """Keep an ``is_allowed`` answer (allow-list entries do not expire)."""
        if generation == self.generation:
            self._put(self._allowed, _allowed_key(lists, identity), (allowed, None))

    def __len__(self) -> int:
        """The number of answers kept, all questions together."""
        return len(self._recognised) + len(self._bans) + len(self._allowed)


def _ban_key(identity: ClientIdentity, account: Account | None) -> Hashable:
    return (identity.fingerprint, identity.key_fingerprint, None if account is None else account.id)


def _allowed_key(lists: Sequence[str], identity: ClientIdentity) -> Hashable:
    return (tuple(lists), identity.fingerprint, identity.key_fingerprint)


class CachedStore(Store):
    """A :class:`~hospes.store.base.Store` whose request-path reads go through a :class:`ReadCache`.

    A backend sets ``_cache`` (with its change counter) and answers the three
    reads uncached; the caching, and its race rule, are written once here.
    """

    _cache: ReadCache

    async def recognise(self, identity: ClientIdentity, now: dt.datetime) -> Account | None:
        """The account of the certificate or of its key (a renewal, recorded on the way)."""
        cache = self._cache
        cached = cache.recognised(identity, now)
        if cached is not MISS:
            return cached
        generation = cache.generation
        account, fresh_until = await self._recognise(identity, now)
        cache.remember_recognised(generation, identity, account, fresh_until)
        return account

    async def active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        """The newest ban in force on the certificate, its key or the account."""
        cache = self._cache
        cached = cache.active_ban(identity, account, now)
        if cached is not MISS:
            return cached
        generation = cache.generation
        found = await self._active_ban(identity, account, now)
        cache.remember_ban(generation, identity, account, found)
        return found

    async def is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool:
        """Whether the certificate or its key is on one of ``lists``."""
        if not lists:
            return False
        cache = self._cache
        cached = cache.is_allowed(lists, identity)
        if cached is not MISS:
            return cached
        generation = cache.generation
        found = await self._is_allowed(lists, identity)
        cache.remember_allowed(generation, lists, identity, found)
        return found

    @abc.abstractmethod
    async def _recognise(
        self, identity: ClientIdentity, now: dt.datetime
    ) -> tuple[Account | None, dt.datetime | None]:
        """:meth:`recognise` from the database: the account, and when the answer expires.

        It expires when the certificate's next ``last_seen`` update is due;
        None: only a change of the store ends it.
        """

    @abc.abstractmethod
    async def _active_ban(
        self, identity: ClientIdentity, account: Account | None, now: dt.datetime
    ) -> Ban | None:
        """:meth:`active_ban` from the database."""

    @abc.abstractmethod
    async def _is_allowed(self, lists: Sequence[str], identity: ClientIdentity) -> bool:
        """:meth:`is_allowed` from the database, for a non-empty ``lists``."""
