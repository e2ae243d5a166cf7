"""``hospes audit``: what admins changed, through the admin capsule or the admin commands.

Every change made on the admin pages (bans, lifted bans, renames, removed
certificates, deleted accounts, allow-list entries) is written to the
identity store's audit log with the time, the fingerprint of the admin's
certificate, the action, its target and the admin's reason; every change made
with ``hospes accounts``, ``ban``, ``unban`` and ``allow`` is written there
too, by ``cli:USER`` (:func:`~hospes.cli.store.actor`).  This command reads
it from the store the server uses (found as the other admin commands find
it), safely while the server runs, newest first.  The table shortens the
admins' fingerprints; ``--json`` gives every field whole.
"""

from __future__ import annotations

import argparse

from ..gemini.fingerprint import PREFIX, short_fingerprint
from ..store import AuditEntry, Store
from .errors import Usage
from .output import emit_json, moment, say, table
from .store import add_store_arguments, run_with_store

__all__ = ["changed_by", "register"]

DEFAULT_LIMIT = 50


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "audit",
        help="show the audit log of the admin capsule and commands, newest first",
        description="Show the changes admins made through the admin capsule or the admin "
        "commands (time; the admin's certificate fingerprint, or cli:USER for a command; "
        "action, target, reason), newest first.",
    )
    parser.add_argument(
        "-n",
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show the last N entries (default {DEFAULT_LIMIT})",
    )
    add_store_arguments(parser)
    parser.set_defaults(run=run_audit)


def changed_by(admin: str) -> str:
    """The audit log's ``admin`` for the table: a fingerprint shortened, ``cli:USER`` whole."""
    return short_fingerprint(admin) + "…" if admin.startswith(PREFIX) else admin


def _json(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "time": entry.time,
        "admin": entry.admin,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
    }


def run_audit(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise Usage(f"--limit must be at least 1, got {args.limit}")

    async def action(store: Store) -> int:
        entries = await store.audit_log(args.limit)
        if args.json:
            emit_json([_json(entry) for entry in entries])
            return 0
        if not entries:
            return say("no audit entries (no admin changed anything yet)")
        print(
            table(
                ["TIME", "ADMIN", "ACTION", "TARGET", "REASON"],
                [
                    [
                        moment(entry.time),
                        changed_by(entry.admin),
                        entry.action,
                        entry.target,
                        entry.reason or "-",
                    ]
                    for entry in entries
                ],
            )
        )
        return 0

    return run_with_store(args, action)
