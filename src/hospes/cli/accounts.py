"""``hospes accounts list | show | create | rename | delete``: manage accounts.

``create NAME FINGERPRINT`` makes an account for someone who has not visited
yet (or whose certificate is not on an account): the first certificate whose
fingerprint, or whose key's fingerprint, is FINGERPRINT becomes the account's.
That is how a capsule with ``require = "account"`` rules gets accounts without
mounting the registration pages.  ``create``, ``rename`` and ``delete`` are
written to the audit log (``hospes audit``), with the ``--reason`` given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from ..store import Account, AlreadyRegistered, Ban, BanKind, CertificateRecord, NameTaken, Store
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

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``accounts`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "accounts",
        help="list, show, create, rename and delete accounts",
        description="Manage the accounts of the server's identity store "
        "(safe while the server runs).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every account, with certificates and status")
    add_store_arguments(listing)
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="one account: certificates and bans")
    show.add_argument("name", metavar="NAME", help="the account (any case)")
    add_store_arguments(show)
    show.set_defaults(run=run_show)
    create = actions.add_parser(
        "create",
        help="create an account for a certificate or key fingerprint",
        description="Create an account for a certificate or key fingerprint: the first "
        "certificate presented with that fingerprint, or made with that key, becomes the "
        "account's. The visitor needs no registration page.",
    )
    create.add_argument(
        "name", metavar="NAME", help="the account's name (1 to 32 letters, digits, - _ .)"
    )
    create.add_argument(
        "fingerprint",
        metavar="FINGERPRINT",
        help="a certificate or key fingerprint ('hospes fingerprint CERT.pem' prints both), "
        "or the first 12 or more hex digits of one the store knows",
    )
    add_reason_argument(create)
    add_store_arguments(create)
    create.set_defaults(run=run_create)
    rename = actions.add_parser("rename", help="give an account another name")
    rename.add_argument("name", metavar="NAME", help="the account (any case)")
    rename.add_argument("new_name", metavar="NEW_NAME", help="its new name")
    add_reason_argument(rename)
    add_store_arguments(rename)
    rename.set_defaults(run=run_rename)
    delete = actions.add_parser(
        "delete", help="delete an account with its certificates (asks unless --yes)"
    )
    delete.add_argument("name", metavar="NAME", help="the account (any case)")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_reason_argument(delete)
    add_store_arguments(delete, json_output=False)
    delete.set_defaults(run=run_delete)


def _ban_state(bans: list[Ban], now: dt.datetime) -> dict[str, Ban]:
    """The ban in force for each banned account id."""
    found: dict[str, Ban] = {}
    for ban in bans:  # newest first: keep the newest
        if ban.kind is BanKind.ACCOUNT and ban.active(now):
            found.setdefault(ban.value, ban)
    return found


def _status(account: Account, ban: Ban | None, awaited: list[str] | None = None) -> str:
    if ban is None:
        return "waiting for its first visit" if awaited else account.status
    return "banned" if ban.until is None else f"banned until {moment(ban.until)}"


def _certificate_json(record: CertificateRecord) -> dict[str, object]:
    return {
        "fingerprint": record.fingerprint,
        "key_fingerprint": record.key_fingerprint,
        "common_name": record.common_name,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
    }


def run_list(args: argparse.Namespace) -> int:
    async def action(store: Store) -> int:
        now = dt.datetime.now(dt.UTC)
        banned = _ban_state(await store.bans(), now)
        rows = []
        for account in await store.accounts():
            records = await store.certificates(account.id)
            awaited = [] if records else await store.awaited_fingerprints(account.id)
            rows.append((account, records, banned.get(str(account.id)), awaited))
        if args.json:
            emit_json(
                [
                    {
                        "id": account.id,
                        "name": account.name,
                        "created": account.created,
                        "status": _status(account, ban, awaited),
                        "certificates": len(records),
                        "last_seen": max((r.last_seen for r in records), default=None),
                    }
                    for account, records, ban, awaited in rows
                ]
            )
            return 0
        if not rows:
            return say("no accounts")
        print(
            table(
                ["NAME", "CREATED", "CERTIFICATES", "LAST SEEN", "STATUS"],
                [
                    [
                        account.name,
                        moment(account.created),
                        str(len(records)),
                        moment(max((r.last_seen for r in records), default=None)),
                        _status(account, ban, awaited),
                    ]
                    for account, records, ban, awaited in rows
                ],
            )
        )
        return 0

    return run_with_store(args, action)


def run_show(args: argparse.Namespace) -> int:
    async def action(store: Store) -> int:
        account = await find_account(store, args.name)
        records = await store.certificates(account.id)
        awaited = await store.awaited_fingerprints(account.id)
        fingerprints = {r.fingerprint for r in records} | {r.key_fingerprint for r in records}
        bans = [
            ban
            for ban in await store.bans()
            if (ban.kind is BanKind.ACCOUNT and ban.value == str(account.id))
            or (ban.kind is not BanKind.ACCOUNT and ban.value in fingerprints)
        ]
        now = dt.datetime.now(dt.UTC)
        if args.json:
            emit_json(
                {
                    "id": account.id,
                    "name": account.name,
                    "created": account.created,
                    "status": account.status,
                    "certificates": [_certificate_json(record) for record in records],
                    "awaited_fingerprints": awaited,
                    "bans": [ban_json(ban) | {"active": ban.active(now)} for ban in bans],
                }
            )
            return 0
        print(f"account  {account.name} (id {account.id})")
        print(f"created  {moment(account.created)}")
        print(f"status   {_status(account, None, awaited)}")
        for fingerprint in awaited:
            print(f"awaits   {fingerprint} (a certificate with it, or made with that key)")
        print()
        print(
            table(
                ["CERTIFICATE", "KEY", "NAME", "VALID UNTIL", "LAST SEEN"],
                [
                    [
                        record.fingerprint,
                        record.key_fingerprint,
                        record.common_name or "-",
                        moment(record.not_after),
                        moment(record.last_seen),
                    ]
                    for record in records
                ],
            )
        )
        if bans:
            print()
            print(
                table(
                    ["BAN", "ON", "REASON", "UNTIL", "IN FORCE"],
                    [
                        [
                            ban.kind.value,
                            ban.value if ban.kind is not BanKind.ACCOUNT else account.name,
                            ban.reason,
                            moment(ban.until, "forever"),
                            "yes" if ban.active(now) else "no (expired)",
                        ]
                        for ban in bans
                    ],
                )
            )
        return 0

    return run_with_store(args, action)


def run_create(args: argparse.Namespace) -> int:
    typed = fingerprint_or_prefix(args.fingerprint)
    reason = audit_reason(args)

    async def action(store: Store) -> int:
        fingerprint = await resolve_fingerprint(store, typed)
        try:
            account = await store.create_account(args.name, fingerprint, dt.datetime.now(dt.UTC))
        except (NameTaken, AlreadyRegistered) as exc:
            return fail(str(exc))
        target = f"account {account.name} (id {account.id}), for {fingerprint}"
        await record_change(store, "create-account", target, reason)
        if args.json:
            emit_json({"id": account.id, "name": account.name, "awaits": fingerprint})
            return 0
        return say(
            f"created account {account.name}: the first certificate with {fingerprint} "
            "(or made with that key) becomes its own"
        )

    return run_with_store(args, action, create=True)


def run_rename(args: argparse.Namespace) -> int:
    reason = audit_reason(args)

    async def action(store: Store) -> int:
        old = await find_account(store, args.name)
        try:
            account = await store.rename(old.name, args.new_name)
        except NameTaken as exc:
            return fail(str(exc))
        target = f"account {old.name} (id {old.id}), now {account.name}"
        await record_change(store, "rename", target, reason)
        if args.json:
            emit_json({"id": account.id, "old_name": old.name, "name": account.name})
            return 0
        return say(f"renamed {old.name} to {account.name}")

    return run_with_store(args, action)


def run_delete(args: argparse.Namespace) -> int:
    reason = audit_reason(args)

    async def action(store: Store) -> int:
        account = await find_account(store, args.name)
        records = await store.certificates(account.id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise Usage("deleting an account needs --yes when not run interactively")
            answer = input(
                f"Delete account {account.name} and its {len(records)} certificate(s)? "
                "Type its name to confirm: "
            )
            if answer.strip().lower() != account.name.lower():
                return fail("not deleted")
        await store.delete(account.name)
        await record_change(
            store, "delete-account", f"account {account.name} (id {account.id})", reason
        )
        return say(f"deleted account {account.name} and {len(records)} certificate(s)")

    return run_with_store(args, action)
