"""``hospes serve``: run the server (the bundled demo capsule by default)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config, ConfigError, Problem, Site, load_config, parse_config
from ..demo import DEMO_LIST
from ..paths import default_state_dir
from ..runner import STORE_FILE, Started, admin_mounts, run, serves_demo
from ..server.tls import TLSError
from ..store import StoreError
from ..store.database_url import redact
from .errors import EXIT_FAILURE, EXIT_USAGE, fail
from .store import ConfigSource, find_config

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the ``hospes`` command."""
    parser = commands.add_parser(
        "serve",
        help="run the Gemini server",
        description="Serve a capsule (the bundled demo by default) over Gemini. "
        "Every flag can also be set in the --config file; flags win.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML configuration file (default $HOSPES_CONFIG, else /etc/hospes/hospes.toml "
        "if it exists)",
    )
    parser.add_argument(
        "--host",
        action="append",
        help="address to listen on (repeatable; default 127.0.0.1, '::' for all)",
    )
    parser.add_argument(
        "--port", type=int, help="TCP port (default 1965; 0: a free one, shown at start-up)"
    )
    parser.add_argument(
        "--hostname",
        action="append",
        help="a name this server answers for (repeatable; default localhost)",
    )
    parser.add_argument(
        "--root", type=Path, help="capsule directory to serve (default: the demo capsule)"
    )
    parser.add_argument(
        "--state", type=Path, help="state directory (default $XDG_STATE_HOME/hospes)"
    )
    parser.add_argument("--cert", type=Path, help="certificate (PEM) of the first hostname")
    parser.add_argument("--key", type=Path, help="private key (PEM) of the first hostname")
    parser.add_argument("--access-log", help="'-' for stdout (default), a file, or 'off'")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--workers", type=int, help="server processes sharing the port (default 1; one per core)"
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="PostgreSQL URL of an identity store shared by several nodes "
        "(default: SQLite in the state directory)",
    )
    parser.add_argument(
        "--public-port",
        type=int,
        action="append",
        metavar="N",
        help="a port request URLs may name besides --port, e.g. a load balancer's (repeatable)",
    )
    parser.add_argument(
        "--proxy-from",
        action="append",
        metavar="CIDR",
        help="a proxy sending PROXY headers (v1 or v2); when given, only proxies may connect "
        "(repeatable)",
    )
    parser.set_defaults(run=run_serve)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags as configuration keys; paths made absolute against the current directory."""
    values: dict[str, Any] = {}
    if args.host:
        values["host"] = args.host
    if args.port is not None:
        values["port"] = args.port
    if args.hostname:
        values["hostnames"] = args.hostname
    for key in ("root", "state", "cert", "key"):
        value = getattr(args, key)
        if value is not None:
            values[key] = str(value.expanduser().absolute())
    if args.root is not None and not Path(values["root"]).is_dir():
        what = "is not a directory" if Path(values["root"]).exists() else "does not exist"
        raise ConfigError(Problem("--root", "", f"capsule root {values['root']} {what}"))
    if args.access_log is not None:
        target = args.access_log
        if target not in ("-", "off"):
            target = str(Path(target).expanduser().absolute())
        values["access_log"] = target
    if args.log_level is not None:
        values["log_level"] = args.log_level
    if args.workers is not None:
        values["workers"] = args.workers
    if args.database is not None:
        values["database"] = args.database
    if args.public_port:
        values["public_ports"] = args.public_port
    if args.proxy_from:
        values["proxy_from"] = args.proxy_from
    return values


def build_config(args: argparse.Namespace, source: ConfigSource | None = None) -> Config:
    """The configuration file (``source``, else found) with the flags applied over it."""
    overrides = _overrides(args)
    if source is None:
        source = find_config(args.config)  # --config, $HOSPES_CONFIG, /etc/hospes/hospes.toml
    if source.path is not None:
        return load_config(source.path, overrides)
    return parse_config(overrides) if overrides else Config()


def announce(started: Started, config: Config, source: ConfigSource | None = None) -> None:
    """Tell the operator the configuration file read, what each hostname serves, and more.

    ``source`` says which configuration file was read and why (the banner
    says so first); each hostname's certificate, the addresses, where state
    is, and how to let visitors in follow.
    """
    port = started.addresses[0][1] if started.addresses else config.port
    suffix = "" if port == 1965 else f":{port}"
    demo = serves_demo(config)
    sites = {site.name: site for site in config.sites()}
    lines = [f"hospes {__version__}"]
    if source is not None:
        lines.append(f"  {source.describe()}")
    for name, certificate in started.certificates.items():
        host = f"[{name}]" if ":" in name else name
        created = " (created now)" if name in started.created else ""
        lines += [
            f"  gemini://{host}{suffix}/ serves {_capsule(sites[name], demo)}",
            f"    certificate {certificate.fingerprint}{created}",
            f"    key         {certificate.key_fingerprint}",
        ]
    listening = ", ".join(
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in started.addresses
    )
    workers = f" with {started.workers} workers" if started.workers > 1 else ""
    state = config.state.absolute()
    lines += [
        f"  listening on {listening}{workers}",
        f"  state in {state}",
        f"    certificates   {state / 'certs'}",
    ]
    if config.database is not None:
        lines.append(f"    identity store {redact(config.database)}")
    else:
        lines.append(f"    identity store {state / STORE_FILE}")
    if config.proxy_from:
        lines.append(f"  behind the proxies {', '.join(config.proxy_from)} (PROXY protocol)")
    lists: dict[str, list[str]] = {DEMO_LIST: ["/allowlist/"]} if demo else {}
    for rule in config.access:
        for name in rule.lists:
            lists.setdefault(name, []).append(rule.path)
    for name, paths in lists.items():
        lines.append(
            f"  to let a visitor into {', '.join(paths)} (allow-list {name!r}): "
            f"hospes allow add {name} FINGERPRINT{_store_options(config)}"
        )
    lines += _admin_lines(config, suffix)
    print("\n".join(lines), file=sys.stderr, flush=True)


def _admin_lines(config: Config, suffix: str) -> list[str]:
    """Where each admin capsule is, and how to make yourself an admin of it."""
    lines = []
    for name, (mount, admins, lists) in admin_mounts(config).items():
        host = f"[{name}]" if ":" in name else name
        who = (
            [f"{len(admins)} admin fingerprint{'s' if len(admins) != 1 else ''}"] if admins else []
        )
        who += [f"allow-list {list_name!r}" for list_name in lists]
        lines.append(f"  admin capsule at gemini://{host}{suffix}{mount} for {' and '.join(who)}")
        if lists:
            lines.append(
                f"    to add yourself: hospes allow add {lists[0]} YOUR-FINGERPRINT"
                f"{_store_options(config)}"
            )
            lines.append(
                "    (your client shows your certificate's fingerprint; so does "
                "'hospes fingerprint CERT.pem', and the 61 of the admin page itself)"
            )
    return lines


def _capsule(site: Site, demo: bool) -> str:
    """What a hostname serves, as the banner says it."""
    if demo:
        return "the demo capsule"
    if site.root is None:
        return "nothing (no root: every page is 51 not found)"
    options = [f"lang={site.lang}"] if site.lang else []
    options += [f"charset={site.charset}"] if site.charset else []
    options += ["listings"] if site.listing else []
    options += [f"account pages at {site.accounts}"] if site.accounts else []
    options += [f"admin capsule at {site.admin}"] if site.admin else []
    return str(site.root.absolute()) + (f" ({', '.join(options)})" if options else "")


def _store_options(config: Config) -> str:
    """The options that make an admin command find this server's store (none for the default)."""
    options = f" --config {config.source}" if config.source is not None else ""
    if config.database is not None and config.source is None:
        options += f" --database {redact(config.database)}"
    elif config.state.absolute() != default_state_dir().absolute():
        options += f" --state {config.state.absolute()}"
    return options


def run_serve(args: argparse.Namespace) -> int:
    source = find_config(args.config)
    try:
        config = build_config(args, source)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(
            config,
            announce=lambda started, config: announce(started, config, source),
            reload=lambda: build_config(args, source),  # the file the banner named, again
        )
    except (TLSError, NotADirectoryError, ConfigError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except StoreError as exc:
        return fail(f"cannot start: {exc}", EXIT_FAILURE)
    except (OSError, ValueError) as exc:
        return fail(f"cannot start: {exc}", EXIT_FAILURE)
