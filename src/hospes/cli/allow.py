"""``hospes allow add | remove | show``: the named allow-lists that ``allowlist`` rules name.

A rule such as ``{ path = "/friends/", require = "allowlist", lists = ["friends"] }``
admits every certificate (or key) fingerprint on the store's list ``friends``;
changes apply to the server's next request.  ``allow add`` warns when no rule
of the server's configuration (nor the demo capsule, when it is served) uses
the list: a typo in a list name would otherwise admit nobody, silently.  An
entry added or removed is written to the audit log (``hospes audit``), with
the ``--reason`` given.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..config import ConfigError
from ..runner import lists_in_use
from ..store import Store
from .errors import EXIT_USAGE, Usage, fail
from .output import emit_json, say, table
from .store import (
    StoreLocation,
    add_reason_argument,
    add_store_arguments,
    audit_reason,
    fingerprint_or_prefix,
    locate_store,
    record_change,
    resolve_fingerprint,
    run_with_store,
)

__all__ = ["check_list_name", "register"]

LIST_RULE = "1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
_LIST = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def check_list_name(name: str) -> str:
    """``name`` if it is a valid allow-list name, else :class:`Usage`."""
    if not _LIST.match(name):
        raise Usage(f"not a valid allow-list name: {name!r} ({LIST_RULE})")
    return name


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``allow`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "allow",
        help="manage named allow-lists of fingerprints",
        description="Add, remove and show the fingerprints on the store's named allow-lists "
        "(referenced by 'allowlist' access rules). Certificate or key fingerprints.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, function, helptext in (
        ("add", run_add, "put a fingerprint on a list (creating the list)"),
        ("remove", run_remove, "take a fingerprint off a list"),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("list", metavar="LIST", help="the list's name, as rules name it")
        action.add_argument(
            "fingerprint",
            metavar="FINGERPRINT",
            help="a certificate or key fingerprint, or the first 12 or more hex digits of one "
            "the store knows",
        )
        add_reason_argument(action)
        add_store_arguments(action)
        action.set_defaults(run=function)
    show = actions.add_parser("show", help="the fingerprints on a list, or every list's size")
    show.add_argument(
        "list", metavar="LIST", nargs="?", help="the list to show (default: every list's size)"
    )
    add_store_arguments(show)
    show.set_defaults(run=run_show)


def _arguments(args: argparse.Namespace) -> tuple[str, str]:
    """(list, fingerprint or prefix) of ``allow add`` and ``remove``, checked before opening."""
    return check_list_name(args.list), fingerprint_or_prefix(args.fingerprint)


def _warn_if_unused(list_name: str, location: StoreLocation) -> None:
    used = lists_in_use(location.config)
    if list_name in used:
        return
    where = location.source.path or "the default configuration"
    named = ", ".join(sorted(used)) if used else "none"
    print(
        f"hospes: warning: no access rule of {where} uses the list {list_name!r} "
        f"(lists in use: {named}); the entry admits nobody until a rule names it",
        file=sys.stderr,
    )


def run_add(args: argparse.Namespace) -> int:
    list_name, typed = _arguments(args)
    reason = audit_reason(args)
    try:
        location = locate_store(args)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)

    async def action(store: Store) -> int:
        fingerprint = await resolve_fingerprint(store, typed)
        added = await store.allow(list_name, fingerprint)
        if added:
            await record_change(store, "allow", f"{fingerprint} on the list {list_name}", reason)
        _warn_if_unused(list_name, location)
        if args.json:
            emit_json({"list": list_name, "fingerprint": fingerprint, "added": added})
            return 0
        where = f"on {list_name}"
        return say(
            f"added {fingerprint} {where}" if added else f"{fingerprint} was already {where}"
        )

    return run_with_store(args, action, create=True, location=location)


def run_remove(args: argparse.Namespace) -> int:
    list_name, typed = _arguments(args)
    reason = audit_reason(args)

    async def action(store: Store) -> int:
        fingerprint = await resolve_fingerprint(store, typed)
        removed = await store.disallow(list_name, fingerprint)
        if removed:
            target = f"{fingerprint} on the list {list_name}"
            await record_change(store, "disallow", target, reason)
        if args.json:
            emit_json({"list": list_name, "fingerprint": fingerprint, "removed": removed})
            return 0 if removed else 1
        if not removed:
            return fail(f"{fingerprint} is not on {list_name}")
        return say(f"removed {fingerprint} from {list_name}")

    return run_with_store(args, action)


def run_show(args: argparse.Namespace) -> int:
    async def action(store: Store) -> int:
        if args.list is None:
            lists = await store.allow_lists()
            if args.json:
                emit_json(lists)
            elif not lists:
                say("no allow-lists")
            else:
                print(table(["LIST", "FINGERPRINTS"], [[n, str(c)] for n, c in lists.items()]))
            return 0
        list_name = check_list_name(args.list)
        fingerprints = await store.allow_list(list_name)
        if args.json:
            emit_json({"list": list_name, "fingerprints": fingerprints})
        elif not fingerprints:
            say(f"{list_name} is empty")
        else:
            print("\n".join(fingerprints))
        return 0

    return run_with_store(args, action)
