"""``hospes id ...``: the user's own client certificates and where each may be sent."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from ..client import IdentityStore
from ..client.identities import DEFAULT_DAYS, MAX_DAYS, Identity, IdentityError, Scope
from ..client.paths import client_data_dir, identities_dir
from ..files import write_atomically
from ..gemini.escape import printable, shell_word
from ..gemini.identity import broken_signature_hash
from ..gemini.protocol import MAX_URL_BYTES
from .data_dir import data_dir_option
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from .output import emit_json, moment, table

__all__ = ["register"]

_SCOPE_CELL = 2 * MAX_URL_BYTES
"""Room for a whole scope, and for a note naming an identity and a scope."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``id`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "id",
        help="manage your client certificates (identities)",
        description="Your client certificates.  An identity is sent only to URLs inside "
        "its scopes (host, port and path prefix), or to one URL named with "
        "hospes get --identity NAME URL.",
        parents=[data_dir_option()],
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = [data_dir_option(inner=True)]

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

    listing = actions.add_parser(
        "list", help="list identities, and which one is sent where", parents=common
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=run_list)

    renew = actions.add_parser(
        "renew",
        help="a new certificate over the same key (keeps accounts tied to the key)",
        parents=common,
        description="Issue a new certificate for NAME's private key: same key fingerprint, "
        "new serial and dates, same subject unless --cn.  Servers that know you by your key "
        "keep knowing you; a new key would be a stranger.  The old certificate is kept as "
        "NAME.crt.N until --prune.",
    )
    renew.add_argument("name", metavar="NAME")
    renew.add_argument(
        "--days", type=int, metavar="N", help="validity (default: as long as the old one)"
    )
    renew.add_argument("--cn", metavar="TEXT", help="a new common name (default: the old one)")
    renew.add_argument(
        "--prune",
        action="store_true",
        help="delete the old certificates kept by earlier renewals (no new certificate)",
    )
    renew.set_defaults(run=run_renew)

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
    scope.add_argument(
        "--replace",
        action="store_true",
        help="take the scope from the identity that has it (two cannot share one)",
    )
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
        # Checked before the key is made: a refused scope must not leave a half-made identity.
        for scope in scopes:
            owners = store.scope_owners(scope)
            if owners:
                return fail(
                    f"{scope} is already a scope of identity {', '.join(owners)}; two identities "
                    f"cannot share a scope. Nothing was created. To move it, create "
                    f"{args.name} without it, then: hospes id scope {args.name} {scope} --replace",
                    EXIT_USAGE,
                )
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
    """Two tables: the identities, then every scope with the identity sent there."""
    store = _store(args)
    identities: list[Identity] = []
    broken: list[tuple[str, str]] = []
    for name in store.names():
        try:
            identities.append(store.get(name))
        except IdentityError as exc:
            broken.append((name, str(exc)))
    scopes = sorted(
        ((scope, identity) for identity in identities for scope in identity.scopes),
        key=lambda item: (item[0].host, item[0].port, item[0].segments, item[1].name),
    )
    if args.json:
        emit_json(
            {
                "identities": [_identity_json(store, identity) for identity in identities]
                + [{"name": name, "error": error} for name, error in broken],
                "scopes": [
                    {
                        "scope": str(scope),
                        "identity": identity.name,
                        "within": _within(scope, scopes),
                    }
                    for scope, identity in scopes
                ],
            }
        )
        return EXIT_FAILURE if broken else EXIT_OK
    if not identities and not broken:
        print("no identities (create one with: hospes id new NAME)", file=sys.stderr)
        return EXIT_OK
    rows = [
        [
            identity.name,
            identity.key_description,
            _expiry(identity),
            str(len(identity.scopes)),
            identity.fingerprint,
        ]
        for identity in identities
    ]
    rows += [[name, "", "unreadable", "", error] for name, error in broken]
    rows.sort(key=lambda row: row[0])
    print(table(["NAME", "KEY", "VALID", "SCOPES", "CERTIFICATE"], rows))
    if scopes:
        print()
        print(
            table(
                ["SCOPE", "SENT", "NOTE"],
                [
                    [str(scope), identity.name, _note(scope, identity, scopes)]
                    for scope, identity in scopes
                ],
                # Shown whole: a scope cut short is not the one matched.  Scopes are
                # canonical (percent-encoded) and the names checked, so nothing to hide.
                limit=_SCOPE_CELL,
            )
        )
    return EXIT_FAILURE if broken else EXIT_OK


def _within(scope: Scope, scopes: list[tuple[Scope, Identity]]) -> dict[str, str] | None:
    """The scope whose identity would be sent inside ``scope`` if it did not exist, and whose.

    That is the narrowest other scope of the same scheme that contains it.  A
    ``gemini://`` scope never covers a ``titan://`` one, nor a ``titan://``
    scope a ``gemini://`` one; but an upload that no ``titan://`` scope
    contains falls back on the ``gemini://`` scopes (see
    :meth:`hospes.client.titan.TitanClient.identity_for`), so for a
    ``titan://`` scope the narrowest ``gemini://`` scope containing the same
    path (or having it) counts when no wider ``titan://`` scope does.
    """
    best: tuple[int, Scope, Identity] | None = None
    for other, owner in scopes:
        if (other.host, other.port) != (scope.host, scope.port):
            continue
        inner = other.segments
        if other.scheme == scope.scheme:
            rank, wider = 1, len(inner) < len(scope.segments)
        elif (scope.scheme, other.scheme) == ("titan", "gemini"):
            rank, wider = 0, len(inner) <= len(scope.segments)
        else:
            continue
        if not wider or scope.segments[: len(inner)] != inner:
            continue
        if best is None or (rank, len(inner)) > (best[0], len(best[1].segments)):
            best = (rank, other, owner)
    return None if best is None else {"scope": str(best[1]), "identity": best[2].name}


def _note(scope: Scope, identity: Identity, scopes: list[tuple[Scope, Identity]]) -> str:
    within = _within(scope, scopes)
    if within is None:
        return ""
    if within["identity"] == identity.name:
        return f"inside {within['scope']}"
    return f"instead of {within['identity']} (inside {within['scope']})"


def _identity_json(store: IdentityStore, identity: Identity) -> dict[str, object]:
    return {
        "name": identity.name,
        "common_name": identity.common_name,
        "fingerprint": identity.fingerprint,
        "key_fingerprint": identity.key_fingerprint,
        "key": identity.key_description,
        "not_before": identity.not_before,
        "not_after": identity.not_after,
        "valid": identity.validity_problem() is None,
        "scopes": [str(scope) for scope in identity.scopes],
        "backups": [str(path) for path in store.backups(identity.name)],
        "certificate_file": str(identity.cert_path),
        "key_file": str(identity.key_path),
    }


def run_renew(args: argparse.Namespace) -> int:
    """Re-issue the certificate over the same key, or prune the old ones."""
    store = _store(args)
    if args.prune:
        if args.days is not None or args.cn is not None:
            return fail("--prune deletes old certificates; it takes no --days or --cn", EXIT_USAGE)
        try:
            removed = store.prune(args.name)
        except IdentityError as exc:
            return fail(str(exc), EXIT_USAGE)
        print(
            f"{args.name}: {len(removed)} old certificate(s) deleted"
            if removed
            else f"{args.name} has no old certificates",
            file=sys.stderr,
        )
        return EXIT_OK
    if args.days is not None and not 1 <= args.days <= MAX_DAYS:
        return fail(f"--days must be between 1 and {MAX_DAYS}", EXIT_USAGE)
    try:
        renewal = store.renew(args.name, days=args.days, common_name=args.cn)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    identity = renewal.identity
    old = renewal.previous
    lines = [
        f"renewed identity {identity.name}: same key {identity.key_fingerprint}",
        f"  new certificate {identity.fingerprint}, valid "
        f"{moment(identity.not_before)} to {moment(identity.not_after)} UTC",
        f"  old certificate kept as {renewal.backup} (valid until "
        f"{moment(old.not_valid_after_utc)}); delete it with: hospes id renew "
        f"{identity.name} --prune",
    ]
    if old.issuer != old.subject:
        lines.append("  the old certificate was issued by someone else; the new one signs itself")
    print("\n".join(lines), file=sys.stderr)
    return EXIT_OK


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
    backups = _store(args).backups(identity.name)
    lines.extend(
        f"{'old certificates' if index == 0 else '':<16} {path}"
        for index, path in enumerate(backups)
    )
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
    broken = broken_signature_hash(identity.certificate)
    if broken is not None:
        print(
            f"warning: it is signed with {broken}, which servers that check signatures "
            f"(hospes among them) refuse with 62; signed again with SHA-256 over the same key "
            f"it stays the same identity: hospes id renew {shell_word(identity.name)}",
            file=sys.stderr,
        )
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
    """Add a scope; one that belongs to another identity moves only with --replace."""
    store = _store(args)
    try:
        scope = Scope.parse(args.prefix)
        owners = [name for name in store.scope_owners(scope) if name != args.name]
        added = store.add_scope(args.name, scope, replace=args.replace)
    except IdentityError as exc:
        return fail(str(exc), EXIT_USAGE)
    if not added:
        print(f"{args.name} was already sent to {scope}", file=sys.stderr)
    elif owners:
        print(
            f"{args.name} is now sent to {scope} (instead of {', '.join(owners)})", file=sys.stderr
        )
    else:
        print(f"{args.name} is now sent to {scope}", file=sys.stderr)
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
