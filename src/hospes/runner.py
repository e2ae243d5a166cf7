"""Assemble a server from a :class:`~hospes.config.Config` and run it until a signal.

This is what ``hospes serve`` does, available to programs that bring their own
application: certificates (created on first run), the store, the handler, the
dispatcher, the TLS contexts, listening sockets, signals and a clean shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .access import AccessPolicy
from .accesslog import AccessLog
from .config import Config
from .demo import create_app
from .dispatch import Dispatcher
from .request import Request
from .response import Response
from .routing import Handler, call_handler
from .server import Server
from .state import ensure_server_certificate
from .static import StaticFiles
from .store import Store
from .store.sqlite import SQLiteStore
from .tls import ServerCertificate, ServerContexts, load_server_context

__all__ = [
    "ByHost",
    "Prepared",
    "build_handler",
    "load_certificates",
    "open_store",
    "prepare",
    "run",
    "serve",
    "store_path",
]

log = logging.getLogger("hospes")

STORE_FILE = "hospes.sqlite3"


class ByHost:
    """Sends each request to the handler of its hostname (virtual hosting)."""

    def __init__(self, handlers: Mapping[str, Handler], default: Handler) -> None:
        self.handlers = handlers
        self.default = default

    async def __call__(self, request: Request) -> Response:
        """Answer with the handler of the request's hostname, or the default one."""
        return await call_handler(self.handlers.get(request.hostname, self.default), request)


@dataclass(slots=True)
class Prepared:
    """A server ready to start, with what the operator should be told about it."""

    server: Server
    certificates: dict[str, ServerCertificate]
    created: list[str]
    store: Store | None


def load_certificates(config: Config) -> tuple[dict[str, ServerCertificate], list[str]]:
    """Load (or create on first run) each hostname's certificate and TLS context."""
    certificates: dict[str, ServerCertificate] = {}
    created = []
    for host in config.hosts:
        if host.cert is not None and host.key is not None:
            cert_path, key_path = host.cert, host.key
        else:
            paths = ensure_server_certificate(config.state, host.name)
            cert_path, key_path = paths.cert, paths.key
            if paths.created:
                created.append(host.name)
        certificates[host.name] = load_server_context(cert_path, key_path)
    return certificates, created


def open_store(config: Config) -> Store:
    """The identity store: SQLite in the state directory (created on first run).

    Raises :class:`~hospes.store.StoreError` when the database cannot be used.
    """
    return SQLiteStore(store_path(config))


def store_path(config: Config) -> Path:
    """Where the embedded identity store of ``config`` lives."""
    return config.state / STORE_FILE


def build_handler(config: Config, store: Store | None) -> Handler:
    """The handler serving ``config``: static roots per host, or the bundled demo capsule."""
    if config.root is None and all(host.root is None for host in config.hosts):
        return create_app(store)
    default: Handler = StaticFiles(config.root) if config.root is not None else _not_found
    per_host = {host.name: StaticFiles(host.root) for host in config.hosts if host.root is not None}
    return ByHost(per_host, default) if per_host else default


def _not_found(request: Request) -> Response:
    return Response.not_found()


def prepare(
    config: Config, handler: Handler | None = None, access_log: AccessLog | None = None
) -> Prepared:
    """Build (but do not start) the server for ``config``.

    Raises :class:`~hospes.tls.TLSError`, :class:`OSError` or
    :class:`NotADirectoryError` with a message for the operator.
    """
    certificates, created = load_certificates(config)
    store = open_store(config)
    if handler is None:
        handler = build_handler(config, store)
    dispatcher = Dispatcher(
        handler,
        hostnames=config.hostnames,
        ports=[config.port],
        policy=AccessPolicy(config.access),
        store=store,
        clock_skew=config.clock_skew,
    )
    if access_log is None:
        access_log = AccessLog(_access_stream(config.access_log))
    server = Server(
        dispatcher, ServerContexts(certificates), limits=config.limits, access_log=access_log
    )
    return Prepared(server, certificates, created, store)


def _access_stream(target: str) -> TextIO:
    if target == "-":
        return sys.stdout
    return open(os.devnull if target == "off" else Path(target), "a", encoding="utf-8")


async def serve(
    config: Config,
    handler: Handler | None = None,
    *,
    announce: Callable[[Prepared, Config], None] | None = None,
) -> None:
    """Run a server for ``config`` until SIGINT or SIGTERM, then shut down gracefully."""
    prepared = prepare(config, handler)
    server = prepared.server
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    try:
        await server.start(config.listen, config.port)
        if announce is not None:
            announce(prepared, config)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        log.info("shutting down: finishing in-flight requests")
        await server.shutdown()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if prepared.store is not None:
            await prepared.store.close()


def run(config: Config, handler: Handler | None = None, **kwargs: object) -> None:
    """Run :func:`serve` on the fastest available event loop (uvloop when installed)."""
    try:
        import uvloop  # noqa: PLC0415 - optional: not available on every platform
    except ImportError:
        asyncio.run(serve(config, handler, **kwargs))  # type: ignore[arg-type]
    else:
        uvloop.run(serve(config, handler, **kwargs))  # type: ignore[arg-type]
