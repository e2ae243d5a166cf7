"""``hospes ban``, ``hospes unban`` and ``hospes bans``: keep someone out, let them back, list.

A ban applies to a certificate (its fingerprint: a renewal escapes it), a key
(``--key``: every certificate made with that key) or an account
(``--account NAME``: every certificate of the account).  The client gets
``61 banned: REASON`` on every ``account`` and ``allowlist`` page.  A ban
and a lifted ban are written to the audit log (``hospes audit``).
"""

from __future__ import annotations

import argparse
import datetime as dt

from ..store import Ban, BanKind, Store
from ..store.bans import MAX_REASON, ban_until, check_reason
from .errors import Usage, fail
from .output import ban_json, emit_json, moment, say, table
from .store import (
    add_reason_argument,
    add_store_arguments,
    audit_reason,
    find_account,
    fingerprint_or_prefix,
    record_change,
    resolve_fingerprint,
    run_with_store,
)

__all__ = ["parse_until", "register"]

DEFAULT_REASON = "banned by the capsule's admin"


def parse_until(text: str, now: dt.datetime) -> dt.datetime:
    """When a ban ends, in UTC: :func:`~hospes.store.bans.ban_until`, its errors naming --until."""
    try:
        return ban_until(text, now)
    except ValueError as exc:
        raise ValueError(f"--until {exc}") from None


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ban``, ``unban`` and ``bans`` to the ``hospes`` command."""
    ban = commands.add_parser(
        "ban",
        help="ban a certificate, a key or an account",
        description="Ban a certificate fingerprint, a key fingerprint (--key) or an "
        "account (--account NAME). The client sees '61 banned: REASON'. "
        "'hospes fingerprint CERT.pem' prints both fingerprints of a certificate.",
    )
    _target_arguments(ban)
    ban.add_argument(
        "--reason",
        default=DEFAULT_REASON,
        help="shown to the banned client, and kept in the audit log",
    )
    ban.add_argument(
        "--until",
        help="when the ban ends: a duration (7d, 12h, 30m) or an ISO date/time (UTC unless "
        "it has an offset), at most 100 years ahead",
    )
    add_store_arguments(ban)
    ban.set_defaults(run=run_ban)
    unban = commands.add_parser("unban", help="lift the bans on a certificate, key or account")
    _target_arguments(unban)
    add_reason_argument(unban)
    add_store_arguments(unban)
    unban.set_defaults(run=run_unban)
    bans = commands.add_parser("bans", help="list every ban, expired ones included")
    add_store_arguments(bans)
    bans.set_defaults(run=run_bans)


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "fingerprint",
        nargs="?",
        help="a certificate (or with --key, key) fingerprint, or the first 12 or more hex "
        "digits of one the store knows",
    )
    parser.add_argument(
        "--key", action="store_true", help="FINGERPRINT is a key's: covers every renewal"
    )
    parser.add_argument("--account", metavar="NAME", help="an account instead of a fingerprint")


def _fingerprint_target(args: argparse.Namespace) -> tuple[BanKind, str] | None:
    """The fingerprint target, checked before the store is opened; None for --account."""
    if (args.fingerprint is None) == (args.account is None):
        raise Usage("give a FINGERPRINT or --account NAME (one of them)")
    if args.account is not None:
        if args.key:
            raise Usage("--key applies to a fingerprint, not to --account")
        return None
    value = fingerprint_or_prefix(args.fingerprint)
    return (BanKind.KEY if args.key else BanKind.CERTIFICATE), value


async def _target(
    store: Store, args: argparse.Namespace, checked: tuple[BanKind, str] | None
) -> tuple[BanKind, str, str, str]:
    """(kind, stored value, description, as the audit log records it) of the ban target."""
    if checked is None:
        account = await find_account(store, args.account)
        what = f"account {account.name}"
        return BanKind.ACCOUNT, str(account.id), what, f"{what} (id {account.id})"
    kind, typed = checked
    value = await resolve_fingerprint(store, typed)
    what = f"{kind.value} {value}"
    return kind, value, what, what


def run_ban(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.UTC)
    try:
        until = None if args.until is None else parse_until(args.until, now)
    except ValueError as exc:
        raise Usage(str(exc)) from None
    try:
        reason = check_reason(args.reason)
    except ValueError:
        if not args.reason.strip():
            raise Usage("--reason must not be empty") from None
        raise Usage(
            f"--reason: at most {MAX_REASON} printable characters (it goes in a 61 line)"
        ) from None
    checked = _fingerprint_target(args)

    async def action(store: Store) -> int:
        kind, value, what, recorded = await _target(store, args, checked)
        ban = await store.ban(kind, value, reason, now, until)
        ends = "for ever" if until is None else f"until {until:%Y-%m-%d %H:%M:%S} UTC"
        await record_change(store, "ban", f"{recorded} {ends}", reason)
        if args.json:
            emit_json(ban_json(ban))
            return 0
        ends = "" if until is None else f" until {moment(until)} UTC"
        return say(f"banned {what}{ends}: {reason}")

    return run_with_store(args, action, create=True)


def run_unban(args: argparse.Namespace) -> int:
    checked = _fingerprint_target(args)
    reason = audit_reason(args)

    async def action(store: Store) -> int:
        kind, value, what, recorded = await _target(store, args, checked)
        count = await store.unban(kind, value)
        if count:
            await record_change(store, "unban", recorded, reason)
        if args.json:
            emit_json({"kind": kind.value, "value": value, "lifted": count})
            return 0 if count else 1
        if not count:
            return fail(f"no ban on {what}")
        return say(f"lifted {count} ban(s) on {what}")

    return run_with_store(args, action)


def run_bans(args: argparse.Namespace) -> int:
    async def action(store: Store) -> int:
        now = dt.datetime.now(dt.UTC)
        bans = await store.bans()
        names = {str(account.id): account.name for account in await store.accounts()}
        if args.json:
            emit_json([ban_json(ban) | {"active": ban.active(now)} for ban in bans])
            return 0
        if not bans:
            return say("no bans")
        print(
            table(
                ["KIND", "ON", "REASON", "SINCE", "UNTIL", "IN FORCE"],
                [_row(b, names, now) for b in bans],
            )
        )
        return 0

    return run_with_store(args, action)


def _row(ban: Ban, names: dict[str, str], now: dt.datetime) -> list[str]:
    target = names.get(ban.value, f"id {ban.value}") if ban.kind is BanKind.ACCOUNT else ban.value
    return [
        ban.kind.value,
        target,
        ban.reason,
        moment(ban.created),
        moment(ban.until, "forever"),
        "yes" if ban.active(now) else "no (expired)",
    ]
