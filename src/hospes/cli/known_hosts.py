"""``hospes known-hosts list | trust | remove``: the server keys pinned on first use."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..client import Client, ClientError, KnownHosts
from ..client.known_hosts import format_address
from ..client.paths import client_data_dir, known_hosts_path
from ..gemini.fingerprint import parse_fingerprint
from ..gemini.url import DEFAULT_PORT, URLError, parse_url
from .data_dir import data_dir_option
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from .output import emit_json, table

__all__ = ["parse_host_port", "register"]

_HOST_CELL = 300
"""Room for ``[host]:port`` with the longest host name DNS allows (253)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``known-hosts`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "known-hosts",
        help="list, trust or forget pinned server keys",
        description="The server keys pinned on first use (TOFU), by host and port.",
        parents=[data_dir_option()],
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = [data_dir_option(inner=True)]

    listing = actions.add_parser("list", help="show every pinned key", parents=common)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=run_list)

    trust = actions.add_parser(
        "trust",
        help="pin the key a server presents now (after a key change)",
        parents=common,
        description="Connect to HOST[:PORT], show its key and pin it, replacing any old pin. "
        "Only the TLS handshake happens: no request and no client certificate is sent.",
    )
    trust.add_argument(
        "address", metavar="HOST[:PORT]", help=f"server (default port {DEFAULT_PORT})"
    )
    trust.add_argument(
        "--key",
        metavar="FINGERPRINT",
        help="pin only if the server presents this key (as shown by hospes get)",
    )
    trust.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    trust.set_defaults(run=run_trust)

    remove = actions.add_parser("remove", help="forget the pin of a server", parents=common)
    remove.add_argument(
        "address", metavar="HOST[:PORT]", help=f"server (default port {DEFAULT_PORT})"
    )
    remove.set_defaults(run=run_remove)


def parse_host_port(text: str) -> tuple[str, int]:
    """``host[:port]``, ``[v6]:port`` or a gemini URL as a normalised (host, port)."""
    candidate = text if "://" in text else f"gemini://{text}/"
    try:
        url = parse_url(candidate)
    except URLError as exc:
        raise ValueError(f"invalid address {text!r}: {exc}") from None
    if not url.host or url.scheme != "gemini":
        raise ValueError(f"invalid address {text!r}: expected HOST[:PORT]")
    return url.host, url.effective_port


def _store(args: argparse.Namespace) -> KnownHosts:
    return KnownHosts(known_hosts_path(client_data_dir(args.data_dir)))


def run_list(args: argparse.Namespace) -> int:
    """Print the pins as a table (or JSON)."""
    try:
        hosts = _store(args).all()
    except ClientError as exc:
        return fail(str(exc), EXIT_FAILURE)
    if args.json:
        emit_json(
            [
                {
                    "host": host.host,
                    "port": host.port,
                    "key_fingerprint": host.key_fingerprint,
                    "cert_fingerprint": host.cert_fingerprint,
                    "not_after": host.not_after,
                    "first_seen": host.first_seen,
                    "last_seen": host.last_seen,
                    "times_seen": host.times_seen,
                }
                for host in hosts
            ]
        )
        return EXIT_OK
    if not hosts:
        print("no known hosts", file=sys.stderr)
        return EXIT_OK
    print(
        table(
            ["HOST", "KEY", "SEEN", "FIRST", "LAST", "CERTIFICATE UNTIL"],
            [
                [
                    host.address,
                    host.key_fingerprint,
                    f"{host.times_seen}x",
                    f"{host.first_seen:%Y-%m-%d}",
                    f"{host.last_seen:%Y-%m-%d}",
                    f"{host.not_after:%Y-%m-%d}",
                ]
                for host in hosts
            ],
            # A host name (up to 253 characters) is shown whole, to be typed back
            # (known-hosts remove); pins hold normalised names, nothing to hide.
            limit=_HOST_CELL,
        )
    )
    return EXIT_OK


def run_trust(args: argparse.Namespace) -> int:
    """Probe the server and pin its key."""
    try:
        host, port = parse_host_port(args.address)
        expected = None if args.key is None else parse_fingerprint(args.key)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    if args.timeout <= 0:
        return fail("--timeout must be more than 0", EXIT_USAGE)
    address = format_address(host, port)
    store = _store(args)
    try:
        client = Client(data_dir=args.data_dir, known_hosts=store, timeout=args.timeout)
        presented = asyncio.run(client.probe(host, port))
        if expected is not None and presented.key_fingerprint != expected:
            return fail(
                f"{address} presents key {presented.key_fingerprint}, not {expected}; "
                "nothing was changed",
                EXIT_FAILURE,
            )
        previous = store.get(host, port)
        unchanged = previous is not None and previous.key_fingerprint == presented.key_fingerprint
        if not unchanged:
            store.trust(host, port, presented)
    except ClientError as exc:
        return fail(str(exc), EXIT_FAILURE)
    if unchanged:
        print(f"{address}: key {presented.key_fingerprint} is already pinned", file=sys.stderr)
    else:
        print(f"{address}: pinned key {presented.key_fingerprint}", file=sys.stderr)
        if previous is not None:
            print(f"  (replaces {previous.key_fingerprint})", file=sys.stderr)
    print(
        f"  certificate {presented.fingerprint}, valid {presented.not_before:%Y-%m-%d} "
        f"to {presented.not_after:%Y-%m-%d}, {presented.label}",
        file=sys.stderr,
    )
    if expected is None and not unchanged:
        print(
            "  no --key was given: compare the key with what the operator publishes",
            file=sys.stderr,
        )
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    """Forget a pin; the next connection is a first use again."""
    try:
        host, port = parse_host_port(args.address)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        removed = _store(args).remove(host, port)
    except ClientError as exc:
        return fail(str(exc), EXIT_FAILURE)
    if not removed:
        return fail(f"{format_address(host, port)} is not a known host", EXIT_FAILURE)
    print(f"forgot {format_address(host, port)}", file=sys.stderr)
    return EXIT_OK
