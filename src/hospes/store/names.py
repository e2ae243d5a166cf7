"""Account names that look alike: the key under which two names count as one.

Two accounts must not be told apart only by characters that look the same:
``aIice`` (a capital I) beside ``alice``, ``b0b`` beside ``bob``, ``rnary``
beside ``mary``.  Unicode's UTS #39 defines the *skeleton* of a string (each
character replaced by the prototype of the characters it can be confused
with); two strings are confusable when their skeletons are equal.  The key
of a name is the case-folded skeleton, so that a case variant of a
confusable name collides too (``AIice`` and ``alice``).  Stores keep the key
in a unique index: a name is refused when its key (or the name itself,
ignoring case) is taken, in the same statement that would insert it.

The table of prototypes is generated from Unicode's ``confusables.txt``
(:mod:`hospes.store.confusables`) and parsed on first use.
"""

from __future__ import annotations

import functools
import unicodedata

from .confusables import DATA

__all__ = ["name_key", "skeleton"]


@functools.cache
def _prototypes() -> dict[int, str]:
    table: dict[int, str] = {}
    for line in DATA.splitlines():
        source, *prototype = line.split()
        table[int(source, 16)] = "".join(chr(int(point, 16)) for point in prototype)
    return table


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text``: NFD, every character mapped to its prototype, NFD again."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).translate(_prototypes()))


def name_key(name: str) -> str:
    """What makes two account names one: the NFKC case fold of the skeleton."""
    return unicodedata.normalize("NFKC", skeleton(name)).casefold()
