"""``hospes id ...``: the user's own client certificates and where each may be sent."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from ..client import IdentityStore
from ..client.identities import DEFAULT_DAYS, Identity, IdentityError, Scope
from ..client.paths import client_data_dir, identities_dir
from ..files import write_atomically
from ..gemini.escape import printable
from .data_dir import data_dir_option
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``id`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "id",
        help="manage your client certificates (identities)",
        description="Your client certificates.  An identity is sent only to URLs inside "
        "its scopes (host, port and path prefix), or to one URL named with "
        "hospes get --identity NAME URL.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = [data_dir_option()]

    new = actions.add_parser("new", help="create an identity", parents=common)
    new.add_argument("name", metavar="NAME")
    new.add_argument("--cn", metavar="TEXT", help="common name shown to servers (default NAME)")
    new.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})"
    )
    new.add_argument(
        "--key", choices=["ecdsa", "ed25519", "rsa"], default="ecdsa", help="default ecdsa (P-256)"
    )
    new.add_argument(
        "--scope", action="append", default=[], metavar="URL-PREFIX", help="scope (repeatable)"
    )
    new.set_defaults(run=run_new)

    listing = actions.add_parser("list", help="list identities", parents=common)
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="fingerprints, scopes, expiry", parents=common)
    show.add_argument("name", metavar="NAME")
    show.set_defaults(run=run_show)

    export = actions.add_parser(
        "export", help="write the certificate and key as PEM", parents=common
    )
    export.add_argument("name", metavar="NAME")
    export.add_argument("-o", "--output", type=Path, help="file to write (created 0600)")
    export.add_argument("--cert-only", action="store_true", help="the certificate, not the key")
    export.set_defaults(run=run_export)

    imported = actions.add_parser(
        "import", help="add an identity from PEM files ('-': stdin)", parents=common
    )
    imported.add_argument("name", metavar="NAME")
    imported.add_argument("file", metavar="FILE", help="certificate and key, or the certificate")
    imported.add_argument("key_file", metavar="KEYFILE", nargs="?", help="the key, if separate")
    imported.set_defaults(run=run_import)

    delete = actions.add_parser("delete", help="delete an identity and its key", parents=common)
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=run_delete)

    scope = actions.add_parser(
        "scope", help="let an identity be sent to a URL prefix", parents=common
    )
    scope.add_argument("name", metavar="NAME")
    scope.add_argument("prefix", metavar="URL-PREFIX", help="gemini://HOST[:PORT][/PATH]")
    scope.set_defaults(run=run_scope)

    unscope = actions.add_parser("unscope", help="withdraw a scope", parents=common)
    unscope.add_argument("name", metavar="NAME")
    what = unscope.add_mutually_exclusive_group(required=True)
    what.add_argument("prefix", metavar="URL-PREFIX", nargs="?")
    what.add_argument("--all", action="store_true", help="withdraw every scope")
    unscope.set_defaults(run=run_unscope)


def _store(args: argparse.Namespace) -> IdentityStore:
    return IdentityStore(identities_dir(client_data_dir(args.data_dir)))


def _expiry(identity: Identity) -> str:
    now = dt.datetime.now(dt.UTC)
    when = f"{identity.not_after:%Y-%m-%d}"
    return f"EXPIRED {when}" if identity.not_after < now else f"until {when}"


def run_new(args: argparse.Namespace) -> int:
    """Create an identity (and scope it)."""
    store = _store(args)
    try:
        scopes = [Scope.parse(text) for text in args.scope]
        if args.days < 1:
            return fail("--days must be at least 1", EXIT_USAGE)
        identity = store.create(args.name, common_name=args.cn, days=args.days, kind=args.key)
        for scope in scopes:
            store.add_scope(args.name, scope)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    print(f"created identity {identity.name} ({identity.key_description})", file=sys.stderr)
    print(f"  certificate {identity.fingerprint}", file=sys.stderr)
    if not scopes:
        print(
            f"  it is sent nowhere yet: hospes id scope {identity.name} gemini://HOST/PATH",
            file=sys.stderr,
        )
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    """One identity per line: name, fingerprint, expiry, scopes."""
    store = _store(args)
    names = store.names()
    if not names:
        print("no identities (create one with: hospes id new NAME)", file=sys.stderr)
        return EXIT_OK
    status = EXIT_OK
    for name in names:
        try:
            identity = store.get(name)
        except IdentityError as exc:
            print(f"{name}  (unreadable: {exc})")
            status = EXIT_FAILURE
            continue
        scopes = ", ".join(str(scope) for scope in identity.scopes) or "(no scope)"
        print(f"{name}  {identity.fingerprint}  {_expiry(identity)}  {scopes}")
    return status


def run_show(args: argparse.Namespace) -> int:
    """Everything about one identity."""
    try:
        identity = _store(args).get(args.name)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    certificate = identity.certificate
    lines = [
        f"identity         {identity.name}",
        f"common name      {printable(identity.common_name or '(none)', 200)}",
        f"certificate      {identity.fingerprint}",
        f"key              {identity.key_fingerprint}",
        f"key type         {identity.key_description}",
        f"valid            {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({_expiry(identity)})",
        f"files            {identity.cert_path}",
        f"                 {identity.key_path}",
    ]
    if identity.scopes:
        lines.extend(
            f"{'scopes' if index == 0 else '':<16} {scope}"
            for index, scope in enumerate(identity.scopes)
        )
    else:
        lines.append("scopes           (none: sent only with hospes get --identity)")
    print("\n".join(lines))
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    """PEM to a file (0600) or stdout; a private key is never printed to a terminal."""
    include_key = not args.cert_only
    to_stdout = args.output is None or str(args.output) == "-"
    if include_key and to_stdout and sys.stdout.isatty():
        return fail(
            "refusing to print a private key to the terminal; use -o FILE, a redirection, "
            "or --cert-only",
            EXIT_USAGE,
        )
    try:
        data = _store(args).export_pem(args.name, include_key=include_key)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    if to_stdout:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return EXIT_OK
    try:
        write_atomically(args.output, data, mode=0o600, exclusive=True)
    except OSError as exc:
        return fail(f"cannot write {args.output}: {exc.strerror}", EXIT_FAILURE)
    print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def run_import(args: argparse.Namespace) -> int:
    """Add an identity from PEM."""
    try:
        data = _read(args.file)
        key_data = None if args.key_file is None else _read(args.key_file)
    except OSError as exc:
        return fail(f"cannot read {exc.filename}: {exc.strerror}", EXIT_USAGE)
    try:
        identity = _store(args).import_pem(args.name, data, key_data)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    print(f"imported identity {identity.name} ({identity.fingerprint})", file=sys.stderr)
    return EXIT_OK


def run_delete(args: argparse.Namespace) -> int:
    """Delete an identity after confirmation (there is no undo: the key is gone)."""
    store = _store(args)
    try:
        identity = store.get(args.name)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    if not args.yes:
        if not sys.stdin.isatty():
            return fail(
                f"deleting {identity.name} destroys its private key: accounts tied to it are "
                "lost; export it first (hospes id export NAME -o FILE), then add --yes",
                EXIT_USAGE,
            )
        sys.stderr.write(
            f"Delete identity {identity.name} ({identity.fingerprint}) and its key? "
            "This cannot be undone. [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return fail("nothing deleted", EXIT_FAILURE)
    try:
        store.delete(identity.name)
    except IdentityError as exc:
        return fail(str(exc), EXIT_FAILURE)
    print(f"deleted identity {identity.name}", file=sys.stderr)
    return EXIT_OK


def run_scope(args: argparse.Namespace) -> int:
    """Add a scope."""
    try:
        scope = Scope.parse(args.prefix)
        added = _store(args).add_scope(args.name, scope)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    state = "now sent to" if added else "was already sent to"
    print(f"{args.name} {state} {scope}", file=sys.stderr)
    return EXIT_OK


def run_unscope(args: argparse.Namespace) -> int:
    """Withdraw one scope or all."""
    try:
        scope = None if args.all else Scope.parse(args.prefix)
        removed = _store(args).remove_scope(args.name, scope)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    if not removed:
        return fail(f"{args.name} has no such scope", EXIT_FAILURE)
    print(f"{args.name}: {removed} scope(s) withdrawn", file=sys.stderr)
    return EXIT_OK
