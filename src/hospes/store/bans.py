"""What an admin types for a ban, wherever they type it: its end, and a reason.

``hospes ban --until … --reason …`` and the admin capsule's prompts take the
same input and refuse the same mistakes, so a ban means the same whichever
way it was made.
"""

from __future__ import annotations

import datetime as dt
import re

from ..gemini.escape import printable

__all__ = ["MAX_BAN", "MAX_REASON", "ban_until", "check_reason"]

MAX_BAN = dt.timedelta(days=100 * 365)
"""The longest ban with an end: a longer one is a permanent one."""
MAX_REASON = 200
"""Characters of a ban's reason: it goes in a 61 line."""

_DURATION = re.compile(r"\A(?:\d+[wdhms])+\Z")
_UNIT = re.compile(r"(\d+)([wdhms])")
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def ban_until(text: str, now: dt.datetime) -> dt.datetime:
    """When a ban ends, in UTC: a duration from ``now`` (``7d``, ``12h``, ``1w2d``) or an ISO time.

    An ISO date or time without an offset is UTC.  Raises :class:`ValueError`
    with a message (quoting ``text``) for anything else, for a time not after
    ``now``, or for one more than 100 years (:data:`MAX_BAN`) after it.
    """
    value = text.strip().lower()
    if _DURATION.match(value):
        seconds = sum(int(amount) * _SECONDS[unit] for amount, unit in _UNIT.findall(value))
        if seconds <= 0:
            raise ValueError(f"{text!r}: a duration must be longer than zero")
        if seconds > MAX_BAN.total_seconds():
            raise ValueError(f"{text!r}: too long; a ban without an end is permanent")
        return now + dt.timedelta(seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r}: expected a duration (7d, 12h, 30m, 1w2d) "
            "or an ISO date/time (2025-06-01, 2025-06-01T18:00, with an optional offset)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    latest = now + MAX_BAN
    try:
        # In UTC, as the store keeps it: 9999-12-31T23:00-05:00 is past the year 9999.
        moment = moment.astimezone(dt.UTC)
    except OverflowError:
        extreme = dt.datetime.max if moment.year > 1 else dt.datetime.min
        moment = extreme.replace(tzinfo=dt.UTC)
    if moment <= now:
        raise ValueError(f"{text!r}: that is not in the future")
    if moment > latest:
        raise ValueError(
            f"{text!r}: at most 100 years ahead (before {latest:%Y-%m-%d}); "
            "a ban without an end is permanent"
        )
    return moment


def check_reason(text: str) -> str:
    """An admin's reason with its white space made single spaces; :class:`ValueError` if unusable.

    It must not be empty, and must be at most :data:`MAX_REASON` printable
    characters: a ban's is what the client reads in its 61 line, and every
    reason goes in the audit log.
    """
    reason = " ".join(text.split())
    if not reason:
        raise ValueError("the reason must not be empty")
    if len(reason) > MAX_REASON or printable(reason, MAX_REASON) != reason:
        raise ValueError(f"a reason is at most {MAX_REASON} printable characters")
    return reason
