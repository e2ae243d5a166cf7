"""``hospes audit``: what admins changed through the admin capsule, newest first.

Every change made on the admin pages (bans, lifted bans, renames, removed
certificates, deleted accounts, allow-list entries) is written to the
identity store's audit log with the time, the fingerprint of the admin's
certificate, the action, its target and the admin's reason.  This command
reads it from the store the server uses (found as the other admin commands
find it), safely while the server runs.  The table shortens the admins'
fingerprints and long targets; ``--json`` gives every field whole.
"""

from __future__ import annotations

import argparse

from ..gemini.fingerprint import short_fingerprint
from ..store import AuditEntry, Store
from .errors import Usage
from .output import emit_json, moment, say, table
from .store import add_store_arguments, run_with_store

__all__ = ["register"]

DEFAULT_LIMIT = 50


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "audit",
        help="show the admin capsule's audit log, newest first",
        description="Show the changes admins made through the admin capsule (time, admin "
        "fingerprint, action, target, reason), newest first.",
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
            return say("no audit entries (nothing was changed through the admin capsule)")
        print(
            table(
                ["TIME", "ADMIN", "ACTION", "TARGET", "REASON"],
                [
                    [
                        moment(entry.time),
                        short_fingerprint(entry.admin) + "…",
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
