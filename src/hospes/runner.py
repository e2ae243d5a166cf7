"""Assemble a server from a :class:`~hospes.config.Config` and run it until a signal.

This is what ``hospes serve`` does, available to programs that bring their own
application: certificates (created on first run), the store, the handler, the
dispatcher, the TLS contexts, listening sockets, signals and a clean shutdown.

Signals: SIGINT and SIGTERM shut down gracefully; SIGHUP reloads the
configuration and certificates (:class:`Reloader`) and reopens the access log;
SIGUSR1 logs the server's counters (with workers, the supervisor logs their totals).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

from . import __version__
from .accounts import account_app
from .admin import Monitor, admin_app, with_admin
from .app.access import AccessPolicy, Requirement
from .app.dispatch import Dispatcher
from .app.redirects import Redirects
from .app.request import Request
from .app.response import Response
from .app.routing import Application, Handler, call_handler
from .app.static import StaticFiles
from .app.upload import no_uploads
from .config import Config, ConfigError, HostConfig, Problem, Site
from .demo import DEMO_ACCOUNTS, DEMO_ADMIN, DEMO_ADMINS, DEMO_LIST, create_app
from .gateways import CGIMount, SCGIMount, TitanMount, with_gateways
from .gemini.url import quote_path
from .policy.addresses import AddressError, AddressSet
from .policy.clock import Clock
from .policy.ratelimit import RateLimits
from .server import Server, raise_open_file_limit
from .server.accesslog import AccessLog
from .server.counters import CounterBoard, CounterPublisher
from .server.listen import bind_all
from .server.state import ensure_server_certificate, ensure_state_dir
from .server.supervisor import supervise
from .server.tls import HostCertificate, ServerContexts, TLSError, load_server_context
from .store import Store, StoreError
from .store.database_url import redact
from .store.sqlite import SQLiteStore

__all__ = [
    "Announce",
    "ByHost",
    "Prepared",
    "Reloader",
    "Started",
    "account_mounts",
    "admin_mounts",
    "build_admin",
    "build_dispatcher",
    "build_gateways",
    "build_handler",
    "check_roots",
    "lists_in_use",
    "load_certificates",
    "open_store",
    "prepare",
    "run",
    "serve",
    "serves_demo",
    "store_path",
]

log = logging.getLogger("hospes")

STORE_FILE = "hospes.sqlite3"
_Mount = TypeVar("_Mount", CGIMount, SCGIMount, TitanMount)


class ByHost:
    """Sends each request to the handler of its hostname (virtual hosting)."""

    def __init__(self, handlers: Mapping[str, Handler], default: Handler) -> None:
        self.handlers = handlers
        self.default = default
        self.uses_accounts = any(
            getattr(handler, "uses_accounts", True) for handler in (*handlers.values(), default)
        )
        self.accepts_uploads = any(
            getattr(handler, "accepts_uploads", False) for handler in (*handlers.values(), default)
        )

    async def __call__(self, request: Request) -> Response:
        """Answer with the handler of the request's hostname, or the default one."""
        handler = self.handlers.get(request.hostname, self.default)
        if request.upload is not None and not getattr(handler, "accepts_uploads", False):
            return no_uploads(request.path)
        return await call_handler(handler, request)


@dataclass(slots=True)
class Prepared:
    """A server ready to start, with what the operator should be told about it."""

    server: Server
    certificates: dict[str, HostCertificate]
    created: list[str]
    store: Store | None
    config: Config
    handler: Handler | None = None
    """The application given to :func:`prepare` (None: built from the configuration)."""
    owns_access_log: bool = True
    """Whether the access log's stream was opened from the configuration (and may be reopened)."""
    counters: CounterBoard | None = None
    """The counters of every worker (:meth:`CounterBoard.totals`), once :func:`serve` runs."""
    monitor: Monitor | None = None
    """What the admin capsule's overview reads of this server (its counters, its refusals)."""


def load_certificates(config: Config) -> tuple[dict[str, HostCertificate], list[str]]:
    """Load (or create on first run) each hostname's certificate and TLS context."""
    certificates: dict[str, HostCertificate] = {}
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


def open_store(config: Config, *, create: bool = True) -> Store:
    """The identity store: PostgreSQL at ``config.database``, else SQLite in the state directory.

    Either is created on first use unless ``create`` is false.  Raises
    :class:`~hospes.store.StoreError` when the database cannot be used (or,
    for PostgreSQL, when psycopg is not installed).
    """
    if config.database is not None:
        try:
            from .store.postgres import PostgresStore  # noqa: PLC0415 - an optional dependency
        except ImportError as exc:
            raise StoreError(
                f"a PostgreSQL database needs psycopg 3 ({exc}): pip install 'hospes[postgres]'"
            ) from None
        return PostgresStore(config.database, create=create)
    return SQLiteStore(store_path(config), create=create)


def store_path(config: Config) -> Path:
    """Where the embedded identity store of ``config`` lives."""
    return config.state / STORE_FILE


def serves_demo(config: Config) -> bool:
    """Whether ``config`` serves the bundled demo capsule (no hostname has a root)."""
    return config.root is None and all(host.root is None for host in config.hosts)


def check_roots(config: Config) -> None:
    """Raise :class:`ConfigError` naming the file and key of every capsule root that is missing."""
    problems = []
    for site in config.sites():
        if site.root is not None and not site.root.is_dir():
            what = "is not a directory" if site.root.exists() else "does not exist"
            source = str(config.source) if config.source is not None else "config"
            problems.append(Problem(source, site.root_key, f"capsule root {site.root} {what}"))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))


def account_mounts(config: Config) -> dict[str, str]:
    """Hostname → where its account pages are (the demo has them at ``/account/``)."""
    if serves_demo(config):
        return {host.name: DEMO_ACCOUNTS for host in config.hosts}
    return {site.name: site.accounts for site in config.sites() if site.accounts is not None}


def admin_mounts(
    config: Config, *, demo: bool | None = None
) -> dict[str, tuple[str, frozenset[str], tuple[str, ...]]]:
    """Hostname → (mount, admin fingerprints, admin lists) of its admin capsule, if it has one.

    The demo capsule (``demo``: by default, when ``config`` serves it) has one
    at ``/admin/`` for the store's list ``admins`` unless ``[admin]`` says
    otherwise (``mount = false``: none).
    """
    demo = serves_demo(config) if demo is None else demo
    mounts = {}
    for host, site in zip(config.hosts, config.sites(), strict=True):
        mount, admins, lists = site.admin, site.admins, site.admin_lists
        own = None if host.admin is None else host.admin.mount
        switched_off = (config.admin.mount if own is None else own) is False
        if mount is None and demo and not switched_off:
            mount = DEMO_ADMIN
            lists = lists if DEMO_ADMINS in lists else (*lists, DEMO_ADMINS)
        if mount is not None:
            mounts[host.name] = (mount, admins, lists)
    return mounts


def lists_in_use(config: Config, *, demo: bool | None = None) -> set[str]:
    """The allow-lists the server of ``config`` consults: its rules', its admins', the demo's.

    ``demo``: whether the demo capsule is served (by default: whether ``config`` serves it).
    """
    demo = serves_demo(config) if demo is None else demo
    used = {name for rule in config.access for name in rule.lists}
    for _, _, lists in admin_mounts(config, demo=demo).values():
        used.update(lists)
    if demo:
        used.add(DEMO_LIST)
    return used


def build_admin(
    config: Config, handler: Handler, monitor: Monitor | None = None, *, demo: bool | None = None
) -> Handler:
    """``handler`` with the admin capsule of each hostname that has one in front of it.

    In front of the gateways too: nothing but the admin capsule answers under
    its mount.  Hostnames with the same settings share one capsule.  ``demo``
    says whether ``handler`` is the demo capsule (by default: whether
    ``config`` serves it); an application of a program's own gets only what
    ``[admin]`` mounts.
    """
    used = lists_in_use(config, demo=demo)
    capsules: dict[tuple[str, frozenset[str], tuple[str, ...]], Handler] = {}
    mounts: dict[str, tuple[str, Handler]] = {}
    for host, settings in admin_mounts(config, demo=demo).items():
        mount, admins, lists = settings
        if settings not in capsules:
            capsules[settings] = admin_app(admins, lists, monitor=monitor, lists_in_use=used)
        mounts[host] = (mount, capsules[settings])
    return with_admin(handler, mounts)


def build_handler(config: Config, store: Store | None) -> Handler:
    """The handler serving ``config``: each hostname's capsule, or the bundled demo capsule.

    Built once per configuration: hostnames whose settings are the same share
    one handler (and its file cache), and a lone handler is returned as is.
    """
    if serves_demo(config):
        return create_app(store, config.state)
    check_roots(config)
    _warn_unregistrable(config)
    shared: dict[tuple[object, ...], Handler] = {}
    per_host: dict[str, Handler] = {}
    for site in config.sites():
        if site.root is None:
            continue
        key = (
            site.root,
            site.lang,
            site.charset,
            tuple(sorted(site.mime.items())),
            site.listing,
            site.accounts,
            site.members_url,
        )
        if key not in shared:
            shared[key] = _site_handler(site)
        per_host[site.name] = shared[key]
    if len(shared) == 1 and len(per_host) == len(config.hosts):
        return next(iter(shared.values()))
    return ByHost(per_host, _NotFound())


def _site_handler(site: Site) -> Handler:
    """One hostname's capsule: its files, and its account pages when it mounts them."""
    assert site.root is not None
    files = StaticFiles(
        site.root,
        mime=site.mime,
        lang=site.lang,
        charset=site.charset,
        listing=site.listing,
    )
    if site.accounts is None:
        return files
    app = Application()
    app.mount(site.accounts, account_app(members_url=site.members_url or site.accounts))
    app.mount("/", files)
    return app


def _warn_unregistrable(config: Config) -> None:
    """Log each ``account`` rule on a hostname with no account pages: nobody could pass it."""
    mounts = account_mounts(config)
    for index, rule in enumerate(config.access):
        if rule.require is not Requirement.ACCOUNT or rule.register_url is not None:
            continue
        for host in config.hostnames:
            if rule.applies_to(host) and host not in mounts:
                log.warning(
                    "access[%d] (%s) needs an account on %s, which mounts no account pages: "
                    'nobody can register there; set [accounts] mount = "/account/"',
                    index,
                    rule.path,
                    host,
                )


def build_gateways(config: Config, handler: Handler, *, clock: Clock = time.monotonic) -> Handler:
    """``handler`` behind the CGI, SCGI and Titan tables of ``config``, global and per hostname.

    A hostname's own tables are added to the global ones; at the same path,
    the hostname's wins.  Raises :class:`NotADirectoryError` or
    :class:`ValueError` for a table that cannot be served.
    """
    software = f"hospes/{__version__}"

    def wrap(inner: Handler, host: HostConfig | None) -> Handler:
        return with_gateways(
            inner,
            cgi=_merged(config.cgi, host.cgi if host else ()),
            scgi=_merged(config.scgi, host.scgi if host else ()),
            titan=_merged(config.titan, host.titan if host else ()),
            software=software,
            clock=clock,
        )

    own = handler.handlers if isinstance(handler, ByHost) else {}
    default = handler.default if isinstance(handler, ByHost) else handler
    per_host = {
        host.name: wrap(own.get(host.name, default), host)
        for host in config.hosts
        if host.name in own or host.cgi or host.scgi or host.titan
    }
    wrapped = wrap(default, None)
    return ByHost(per_host, wrapped) if per_host else wrapped


def _merged(common: Sequence[_Mount], own: Sequence[_Mount]) -> list[_Mount]:
    """The global tables and a hostname's own; at the same path, the hostname's."""
    paths = {mount.path.rstrip("/") for mount in own}
    kept = [mount for mount in common if mount.path.rstrip("/") not in paths]
    return kept + list(own)


class _NotFound:
    """The default handler of a server whose capsules are all per hostname."""

    uses_accounts = False

    def __call__(self, request: Request) -> Response:
        return Response.not_found()


def build_dispatcher(
    config: Config,
    handler: Handler,
    store: Store | None,
    previous: Dispatcher | None = None,
    *,
    clock: Clock = time.monotonic,
    mounts: Mapping[str, str] | None = None,
) -> Dispatcher:
    """The dispatcher of ``config``; ``previous`` hands over its identity cache and rate buckets.

    ``mounts`` (hostname → prefix of its account pages, see :func:`account_mounts`)
    is where the 61 of an ``account`` rule sends people to register.
    """
    rate_limits = RateLimits(config.rate_limits, clock=clock)
    if previous is not None and previous.rate_limits is not None:
        rate_limits.inherit(previous.rate_limits)
    register_urls = {host: quote_path(f"{mount}register") for host, mount in (mounts or {}).items()}
    return Dispatcher(
        handler,
        hostnames=config.hostnames,
        ports=[config.port, *config.public_ports],
        policy=AccessPolicy(config.access, register_urls=register_urls),
        redirects=Redirects(config.redirects),
        store=store,
        clock_skew=config.clock_skew,
        identities=previous.identities if previous is not None else None,
        rate_limits=rate_limits,
        clock=clock,
    )


def prepare(
    config: Config,
    handler: Handler | None = None,
    access_log: AccessLog | None = None,
    *,
    clock: Clock = time.monotonic,
) -> Prepared:
    """Build (but do not start) the server for ``config``, its time read from ``clock``.

    Raises :class:`~hospes.server.tls.TLSError`, :class:`OSError` or
    :class:`NotADirectoryError` with a message for the operator.
    """
    ensure_state_dir(config.state)
    certificates, created = load_certificates(config)
    store = open_store(config)
    monitor = Monitor()
    served = build_admin(
        config,
        build_gateways(config, handler or build_handler(config, store), clock=clock),
        monitor,
        demo=None if handler is None else False,
    )
    dispatcher = build_dispatcher(
        config,
        served,
        store,
        clock=clock,
        mounts=None if handler is not None else account_mounts(config),
    )
    owns_access_log = access_log is None
    if access_log is None:
        access_log = AccessLog(
            _access_stream(config.access_log),
            full_fingerprints=config.access_log_fingerprint == "full",
        )
    server = Server(
        dispatcher,
        ServerContexts(certificates),
        limits=config.limits,
        access_log=access_log,
        deny=AddressSet(config.deny),
        proxies=AddressSet(config.proxy_from),
        clock=clock,
    )
    monitor.watch(server)
    return Prepared(
        server, certificates, created, store, config, handler, owns_access_log, monitor=monitor
    )


class Reloader:
    """Applies a re-read configuration to a running server (what SIGHUP does).

    Everything is built first (certificates, handler, dispatcher, deny list);
    only if all of it succeeds is it swapped in, for new connections: requests
    in flight finish on what they started with.  A bad configuration or an
    unreadable certificate is logged and the running one stays in force.
    Listening addresses, the port and the state directory cannot change
    without a restart; a change is logged and ignored.
    """

    def __init__(self, prepared: Prepared, load: Callable[[], Config]) -> None:
        self.prepared = prepared
        self.load = load

    def __call__(self) -> bool:
        """Reload now; True when the new configuration is in force."""
        running = self.prepared.config
        source = running.source or "the command line"
        try:
            config = self.load()
            self._keep_what_needs_a_restart(running, config)
            certificates, created = load_certificates(config)
            store = self.prepared.store
            server = self.prepared.server
            own = self.prepared.handler
            handler = build_admin(
                config,
                build_gateways(config, own or build_handler(config, store), clock=server.clock),
                self.prepared.monitor,
                demo=None if own is None else False,
            )
            dispatcher = build_dispatcher(
                config,
                handler,
                store,
                previous=server.dispatcher,
                clock=server.clock,
                mounts=None if own is not None else account_mounts(config),
            )
            contexts = ServerContexts(certificates)
            deny = AddressSet(config.deny)
            server.reconfigure(
                dispatcher=dispatcher,
                contexts=contexts,
                limits=config.limits,
                deny=deny,
                proxies=AddressSet(config.proxy_from),
            )
        except (ConfigError, TLSError, AddressError, OSError, ValueError) as exc:
            log.error("reload failed, still serving the previous configuration: %s", exc)
            return False
        before = self.prepared.certificates
        self.prepared.config = config
        self.prepared.certificates = certificates
        if self.prepared.owns_access_log:
            self._reopen_access_log(config.access_log)
            server.access_log.full_fingerprints = config.access_log_fingerprint == "full"
        logging.getLogger().setLevel(config.log_level.upper())
        for name, certificate in certificates.items():
            if name in before and name not in created:
                continue
            # What a visitor of a new hostname checks their client's pin against.
            log.info(
                "%s %s: certificate %s, key %s",
                "created a certificate for" if name in created else "now serving",
                name,
                certificate.fingerprint,
                certificate.key_fingerprint,
            )
        log.info("reloaded the configuration from %s", source)
        return True

    @staticmethod
    def _keep_what_needs_a_restart(running: Config, config: Config) -> None:
        for what, old, new in (
            ("listening addresses", running.listen, config.listen),
            # Port 0 asks for any free port: the one in use is one.
            ("port", running.port, config.port or running.port),
            ("state directory", running.state, config.state),
            ("workers", running.workers, config.workers),
            ("database", _shown(running.database), _shown(config.database)),
        ):
            if old != new:
                log.warning("%s changed from %s to %s: that needs a restart", what, old, new)
        config.listen, config.port = running.listen, running.port
        config.state, config.workers = running.state, running.workers
        config.database = running.database

    def _reopen_access_log(self, target: str) -> None:
        """Reopen the access log, so a rotated file is let go of (what logrotate expects)."""
        access_log = self.prepared.server.access_log
        try:
            stream = _access_stream(target)
        except OSError as exc:
            log.error("cannot reopen the access log %s: %s", target, exc.strerror)
            return
        access_log.flush()
        old, access_log.stream = access_log.stream, stream
        if old is not sys.stdout:
            try:
                old.close()
            except OSError as exc:
                # A full disk: the lines the old file still buffered are lost, the file is
                # closed all the same, and the reload must go on to its end.
                log.error("closing the previous access log lost its last lines: %s", exc.strerror)


def _shown(database: str | None) -> str:
    """A database URL as logs show it (no password); SQLite when there is none."""
    return "SQLite in the state directory" if database is None else redact(database)


def _access_stream(target: str) -> TextIO:
    if target == "-":
        return sys.stdout
    if target == "off":
        return open(os.devnull, "a", encoding="utf-8")
    stream = open(Path(target), "a", encoding="utf-8")  # noqa: SIM115 - the log, kept open
    if _cut_line(stream):
        # The end of a line cut by a full disk (or a kill) stands alone: the next line
        # must not be glued to it.
        stream.write("\n")
    return stream


def _cut_line(stream: TextIO) -> bool:
    """Whether ``stream``'s file is a regular file whose last line has no newline."""
    status = os.fstat(stream.fileno())
    if not stat.S_ISREG(status.st_mode) or status.st_size == 0:
        return False
    try:
        with open(stream.name, "rb") as existing:
            return os.pread(existing.fileno(), 1, status.st_size - 1) != b"\n"
    except OSError:  # a log file the server may append to but not read
        return False


@dataclass(frozen=True, slots=True)
class Started:
    """What the operator is told once the server listens."""

    certificates: dict[str, HostCertificate]
    created: list[str]
    """Hostnames whose certificate was created by this start."""
    addresses: list[tuple[str, int]]
    workers: int = 1


Announce = Callable[[Started, Config], None]


async def serve(
    config: Config,
    handler: Handler | None = None,
    *,
    announce: Announce | None = None,
    reload: Callable[[], Config] | None = None,
    reuse_port: bool = False,
    counters: tuple[CounterBoard, int] | None = None,
) -> None:
    """Run a server for ``config`` until SIGINT or SIGTERM, then shut down gracefully.

    ``reload`` re-reads the configuration on SIGHUP (``hospes serve`` re-reads
    its file and applies its flags again); without it, SIGHUP reloads
    ``config`` as it is, which still picks up new certificates and files.
    ``reuse_port`` lets several worker processes listen on the same port.
    Port 0 listens on a free port, which the dispatcher answers for and
    ``announce`` is told.  ``counters`` is a worker's board and slot: its
    counters are published there and logged at debug level (the supervisor logs
    the totals); without it, this process has a board of its own and logs its
    counters at info level.
    """
    raise_open_file_limit()
    # Bound first (so port 0 is a known port before the dispatcher is built), listened on
    # last (so nobody connects before the signals are handled).
    listeners = bind_all(config.listen, config.port, reuse_port=reuse_port, listen=False)
    try:
        config = _on_bound_port(config, listeners)
        prepared = prepare(config, handler)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    server = prepared.server
    board, slot = counters or (CounterBoard(1), 0)
    prepared.counters = board
    publisher = CounterPublisher(
        board, slot, server.stats, lambda: server.connection_count, refusals=server.refusals
    )
    if prepared.monitor is not None:
        prepared.monitor.share(board, publisher.publish)
    level = logging.INFO if counters is None else logging.DEBUG

    def report_counters() -> None:
        publisher.publish()
        log.log(level, "counters: %s", server.stats.summary())

    reloader = Reloader(prepared, reload or (lambda: config))
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    handlers: dict[int, Callable[[], object]] = {
        signal.SIGINT: stopping.set,
        signal.SIGTERM: stopping.set,
        signal.SIGHUP: reloader,
        signal.SIGUSR1: report_counters,
    }
    try:
        # Signals are handled before the port opens: a SIGHUP sent as soon as the
        # port answers must reload, not kill the process with the default action.
        for signum, callback in handlers.items():
            loop.add_signal_handler(signum, callback)
        await server.start(sockets=listeners)
        publisher.start()
        if announce is not None:
            announce(Started(prepared.certificates, prepared.created, server.addresses), config)
        await stopping.wait()
        log.info("shutting down: finishing in-flight requests")
        await server.shutdown()
        publisher.stop()
        log.log(level, "counters: %s", server.stats.summary())
    finally:
        for signum in handlers:
            loop.remove_signal_handler(signum)
        if prepared.store is not None:
            await prepared.store.close()


def run(
    config: Config,
    handler: Handler | None = None,
    *,
    announce: Announce | None = None,
    reload: Callable[[], Config] | None = None,
) -> int:
    """Run the server until a signal stops it; returns the exit status.

    With ``config.workers`` above 1, the certificates are created and the
    listening addresses bound here (a taken port fails before any fork), then
    :func:`~hospes.server.supervisor.supervise` forks the workers, each
    running :func:`serve` on its own ``SO_REUSEPORT`` socket.  The
    supervisor keeps its sockets bound but not listening: they receive no
    connection, and hold the port (port 0: the free one found here) for
    every worker, restarted ones included.
    """
    if config.workers == 1:
        _run_loop(serve(config, handler, announce=announce, reload=reload))
        return 0
    if handler is None:
        check_roots(config)  # here, not in every worker that would die of it
    certificates, created = load_certificates(config)
    held = bind_all(config.listen, config.port, reuse_port=True, listen=False)
    try:
        config = _on_bound_port(config, held)
        if announce is not None:
            addresses = [listener.getsockname()[:2] for listener in held]
            announce(Started(certificates, created, addresses, config.workers), config)

        board = CounterBoard(config.workers)

        def worker(number: int) -> int:
            for listener in held:
                listener.close()
            counters = (board, number - 1)
            _run_loop(serve(config, handler, reload=reload, reuse_port=True, counters=counters))
            return 0

        def report() -> None:
            # On SIGUSR1 the workers publish at once: wait for them (a publication from the
            # last 50 ms, the signals having just been sent, is current), so the line is too.
            board.wait_for_workers(time.time() - 0.05)
            stats, _ = board.totals()
            log.info("counters of %d workers: %s", config.workers, stats.summary())

        return supervise(
            config.workers, worker, report=report, retire=lambda number: board.retire(number - 1)
        )
    finally:
        for listener in held:
            listener.close()


def _on_bound_port(config: Config, sockets: list[socket.socket]) -> Config:
    """``config`` with its port 0 (any free port) replaced by the port ``sockets`` are bound to."""
    if config.port != 0 or not sockets:
        return config
    return replace(config, port=sockets[0].getsockname()[1])


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on the fastest available event loop (uvloop when installed)."""
    try:
        import uvloop  # noqa: PLC0415 - optional: not available on every platform
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
