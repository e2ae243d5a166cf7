"""hospes.toml: every key of the server's configuration, and the :class:`Config` it builds.

Every setting can be given in the file and overridden by a flag.  Each key is
declared once in :data:`SCHEMA` (name, type, default, description, where it
lands); :func:`parse_config` reports every mistake of a file at once, each
naming the file, the table and the key, so ``hospes serve`` can say exactly
what to fix.  Relative paths in a file are relative to that file.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..app.access import AccessRule, Requirement
from ..gateways.cgi import DEFAULT_MAX_OUTPUT, CGIMount
from ..gateways.scgi import SCGIMount, parse_scgi_address
from ..gateways.titan import DEFAULT_MAX_SIZE, TitanMount
from ..gemini.fingerprint import parse_fingerprint
from ..gemini.url import URLError, parse_url
from ..paths import default_state_dir
from ..policy.addresses import parse_network, read_address_file
from ..policy.limits import Limits
from ..policy.ratelimit import RateRule
from ..store.database_url import is_database_url
from .schema import (
    ArrayOf,
    ConfigError,
    Context,
    FilePath,
    Integer,
    Invalid,
    Key,
    ListOf,
    MapOf,
    Number,
    OneOf,
    Problem,
    String,
    Table,
    Type,
    parse,
)

__all__ = [
    "DEFAULT_RATE_RULE",
    "SCHEMA",
    "Config",
    "HostConfig",
    "load_config",
    "parse_config",
    "parse_rate",
    "read_config_file",
]

_RATE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*\Z")
_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}

DEFAULT_RATE_RULE = RateRule(path="/", per_address=300 / 60, per_key=120 / 60, burst=60)
"""Applies to every path no ``[[rate_limit]]`` rule covers (unless a rule for "/" replaces it).

Generous, because one address may be a whole NAT of readers and a Gemini page
is one request: it only stops floods and runaway crawlers.
"""


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Settings of one hostname: its certificate (created if None), capsule root and gateways."""

    name: str
    cert: Path | None = None
    key: Path | None = None
    root: Path | None = None
    cgi: tuple[CGIMount, ...] = ()
    scgi: tuple[SCGIMount, ...] = ()
    titan: tuple[TitanMount, ...] = ()
    """Gateways of this hostname, besides (and at the same path, instead of) the global ones."""


@dataclass(slots=True)
class Config:
    """Everything ``hospes serve`` needs."""

    listen: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 1965
    hosts: list[HostConfig] = field(default_factory=lambda: [HostConfig("localhost")])
    root: Path | None = None
    """The capsule to serve; None serves the bundled demo capsule."""
    state: Path = field(default_factory=default_state_dir)
    access: list[AccessRule] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    rate_limits: list[RateRule] = field(default_factory=lambda: [DEFAULT_RATE_RULE])
    deny: tuple[str, ...] = ()
    """Addresses and networks refused at accept (the file entries included)."""
    access_log: str = "-"
    log_level: str = "info"
    clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    workers: int = 1
    database: str | None = None
    """A PostgreSQL URL for the identity store; None: SQLite in the state directory."""
    public_ports: tuple[int, ...] = ()
    """Ports request URLs may name besides the listening one (a proxy's or a port forward's)."""
    proxy_from: tuple[str, ...] = ()
    """Proxies whose connections start with a PROXY header; when set, nobody else may connect."""
    cgi: list[CGIMount] = field(default_factory=list)
    scgi: list[SCGIMount] = field(default_factory=list)
    titan: list[TitanMount] = field(default_factory=list)
    source: Path | None = None

    @property
    def hostnames(self) -> list[str]:
        """The names this server answers for, normalised as request hosts are."""
        return [host.name for host in self.hosts]


def parse_rate(text: str) -> tuple[float, float] | None:
    """A rate such as ``10/min`` as (requests, seconds), or None for ``off``.

    Raises :class:`ValueError` with what was expected.
    """
    if text.strip().lower() == "off":
        return None
    match = _RATE.match(text.lower())
    if match is None or match[2] not in _UNITS:
        raise ValueError(
            f"expected a rate such as '10/min' (per s, min, hour or day) or 'off', got {text!r}"
        )
    count = float(match[1])
    if count <= 0:
        raise ValueError(f"a rate must be above zero, got {text!r} (use 'off' for no limit)")
    return count, float(_UNITS[match[2]])


# -- the types of hospes' values ------------------------------------------------------------------


def _hostname(name: str) -> str:
    """A configured hostname normalised exactly as request URLs' hosts are (IDNA, case, dot)."""
    try:
        url = parse_url(f"gemini://{name}/" if ":" not in name else f"gemini://[{name}]/")
    except URLError as exc:
        # The position would count from the start of the URL built here, not of the name.
        reason = re.sub(r" at position \d+", "", str(exc))
        raise ValueError(f"invalid hostname {name!r}: {reason}") from None
    if url.port is not None or url.path != "/" or not url.host:
        raise ValueError(f"invalid hostname {name!r}")
    return url.host


def _database_url(text: str) -> str:
    if not is_database_url(text):
        raise ValueError(
            "expected a PostgreSQL URL such as 'postgresql://hospes@db.example/hospes' "
            "(leave 'database' out for SQLite in the state directory)"
        )
    return text


def _network(text: str) -> str:
    parse_network(text)
    return text


def _url_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"must start with '/', got {path!r}")
    return path


def _address_file(path: Path) -> list[str]:
    try:
        return read_address_file(path)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


def _seconds(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


class _LogTarget(Type[str]):
    """``-`` (standard output), ``off``, or a file (relative to the configuration file)."""

    expected = "'-' (standard output), 'off', or a file"
    kinds = (str,)

    def make(self, value: str, at: Context) -> str:
        """The value, with a file made absolute."""
        return value if value in ("-", "off") else str(FilePath().make(value, at))


class _SCGIAddress(Type[str]):
    """``host:port`` or ``unix:PATH`` (a relative path relative to the configuration file)."""

    expected = "'host:port' or 'unix:/path/to.sock'"
    kinds = (str,)

    def make(self, value: str, at: Context) -> str:
        """The address, with a Unix socket's path made absolute."""
        if value.startswith("unix:"):
            path = FilePath().make(value[len("unix:") :] or ".", at)
            value = f"unix:{path}"
        try:
            parse_scgi_address(value)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        return value


def _directory(path: Path) -> Path:
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    return path


_VARIABLE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


def _variable_name(name: str) -> str:
    if _VARIABLE.match(name) is None:
        raise ValueError(f"{name!r} is not a variable name (letters, digits, '_')")
    return name


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("a variable's value cannot contain a NUL character")
    return value


HOSTNAME = String().then(_hostname, "a hostname")
PORT = Integer(1, 65535, expected="a port number (1 to 65535)")
NETWORK = String().then(_network, "an IP address or CIDR network")
NETWORKS = ListOf(NETWORK, "addresses and networks")
FINGERPRINT = String().then(parse_fingerprint, "a SHA-256 fingerprint")
RATE = String().then(parse_rate, "a rate such as '10/min', or 'off'")
URL_PATH = String().then(_url_path, "a path starting with '/'")
POSITIVE = Number(above=0)
DIRECTORY = FilePath().then(_directory, "a directory")
ENVIRONMENT = MapOf(
    String().then(_variable_name, "a variable name"),
    String().then(_no_nul),
    expected="a table of variable names and values",
)
FINGERPRINTS = ListOf(FINGERPRINT, "fingerprints").then(frozenset)
LIST_NAMES = ListOf(String("a list name"), "list names").then(tuple)


# -- tables ---------------------------------------------------------------------------------------


def _access_rule(
    path: str,
    require: Requirement,
    fingerprints: frozenset[str] = frozenset(),
    lists: tuple[str, ...] = (),
) -> AccessRule:
    if require is not Requirement.ALLOWLIST and (fingerprints or lists):
        raise Invalid("'fingerprints' and 'lists' only apply to require = 'allowlist'")
    if require is Requirement.ALLOWLIST and not (fingerprints or lists):
        raise Invalid("an allowlist rule needs 'fingerprints' or 'lists'")
    return AccessRule(path=path, require=require, fingerprints=fingerprints, lists=lists)


ACCESS_RULE = Table(
    [
        Key("path", URL_PATH, "the path prefix the rule covers", required=True),
        Key(
            "require",
            OneOf.enum(Requirement),
            "what a client needs: any valid certificate, one on the allow-list, or an account",
            required=True,
        ),
        Key(
            "fingerprints",
            FINGERPRINTS,
            "certificate or key fingerprints an allowlist rule accepts",
            default="[]",
        ),
        Key(
            "lists",
            LIST_NAMES,
            "named allow-lists (managed with 'hospes allow') an allowlist rule accepts",
            default="[]",
        ),
    ],
    _access_rule,
)


def _distinct_paths(mounts: list[Any], at: Context) -> list[Any]:
    """One table per path in each of [[cgi]], [[scgi]] and [[titan]]."""
    seen: set[str] = set()
    for index, mount in enumerate(mounts):
        path = mount.path.rstrip("/") or "/"
        if path in seen:
            at.at(index).at("path").report(f"{mount.path!r} has a table already")
        seen.add(path)
    return mounts


CGI = Table(
    [
        Key("path", URL_PATH, "the URL prefix the scripts answer under", required=True),
        Key("directory", DIRECTORY, "the directory of the executables", required=True),
        Key(
            "timeout",
            POSITIVE,
            "seconds a script may run; then its process group is killed (the client gets 42)",
            default="10",
        ),
        Key(
            "max_output",
            Integer(minimum=1),
            "bytes a script may write; the response is cut after them",
            default=str(DEFAULT_MAX_OUTPUT),
        ),
        Key(
            "max_running",
            Integer(minimum=1),
            "scripts of this table running at once (more requests get 41)",
            default="32",
        ),
        Key("env", ENVIRONMENT, "variables every script gets, besides the request's", default="{}"),
    ],
    CGIMount,
)

SCGI = Table(
    [
        Key("path", URL_PATH, "the URL prefix the application answers under", required=True),
        Key("address", _SCGIAddress(), "where the application listens", required=True),
        Key(
            "connect_timeout",
            POSITIVE,
            "seconds to connect; an application that cannot be reached answers 43",
            default="5",
        ),
        Key(
            "timeout",
            POSITIVE,
            "seconds the application has for its header, then for each chunk of the body",
            default="30",
        ),
        Key(
            "max_upload",
            Integer(minimum=0),
            "Titan uploads of at most this many bytes are passed on (default: none)",
        ),
        Key("env", ENVIRONMENT, "variables sent with every request", default="{}"),
    ],
    SCGIMount,
)


def _titan_mount(
    path: str,
    require: Requirement = Requirement.CERTIFICATE,
    fingerprints: frozenset[str] = frozenset(),
    lists: tuple[str, ...] = (),
    **settings: Any,
) -> TitanMount:
    _access_rule(path, require, fingerprints, lists)  # the same checks as an access rule
    return TitanMount(
        path=path, require=require, fingerprints=fingerprints, lists=lists, **settings
    )


TITAN = Table(
    [
        Key("path", URL_PATH, "the URL prefix that takes uploads", required=True),
        Key(
            "directory",
            DIRECTORY,
            "where uploads are written (and served from); default: an application route",
        ),
        Key(
            "max_size",
            Integer(minimum=0),
            "bytes an upload may have; a larger one is refused (59) before it is read",
            default=str(DEFAULT_MAX_SIZE),
        ),
        Key(
            "timeout",
            POSITIVE,
            "seconds an upload's body may take, plus one per write_rate bytes of it",
            default="10",
        ),
        Key("token", String(), "a token uploads must carry (;token=…)"),
        Key(
            "require",
            OneOf.enum(Requirement),
            "who may upload: any valid certificate, one on the allow-list, or an account",
            default='"certificate"',
        ),
        Key("fingerprints", FINGERPRINTS, "fingerprints an allowlist table accepts", default="[]"),
        Key("lists", LIST_NAMES, "named allow-lists an allowlist table accepts", default="[]"),
    ],
    _titan_mount,
)
CGI_TABLES = ArrayOf(CGI, _distinct_paths)
SCGI_TABLES = ArrayOf(SCGI, _distinct_paths)
TITAN_TABLES = ArrayOf(TITAN, _distinct_paths)


def _rate_rule(
    path: str = "/", burst: float | None = None, **rates: tuple[float, float] | None
) -> RateRule:
    if not rates:
        raise Invalid("a rate limit needs 'per_address' or 'per_key' (or both)")
    if burst is None:
        # As many at once as a rate's count ("10/min": 10), the smaller of the two.
        given = [rate[0] for rate in rates.values() if rate is not None]
        burst = max(1.0, min(given, default=1.0))

    def per_second(key: str) -> float | None:
        rate = rates.get(key)
        return None if rate is None else rate[0] / rate[1]

    return RateRule(
        path=path,
        per_address=per_second("per_address"),
        per_key=per_second("per_key"),
        burst=float(burst),
    )


def _rate_rules(rules: list[RateRule], at: Context) -> list[RateRule]:
    """One rule per path; the default rule for "/" unless the file gives one."""
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.path in seen:
            at.at(index).at("path").report(f"{rule.path!r} has a rule already")
        seen.add(rule.path)
    return rules if "/" in seen else [*rules, DEFAULT_RATE_RULE]


RATE_RULE = Table(
    [
        Key("path", URL_PATH, "the path prefix the rule covers", default='"/"'),
        Key("per_address", RATE, "requests allowed per address group, or 'off'"),
        Key("per_key", RATE, "requests allowed per client key (certificate public key), or 'off'"),
        Key(
            "burst",
            Integer(minimum=1),
            "requests allowed at once (default: the smaller count of the two rates)",
        ),
    ],
    _rate_rule,
)


def _deny(
    addresses: list[str] | None = None, files: list[list[str]] | None = None
) -> tuple[str, ...]:
    return (*(addresses or ()), *(entry for entries in files or () for entry in entries))


DENY = Table(
    [
        Key("addresses", NETWORKS, "addresses and CIDR networks refused at accept", default="[]"),
        Key(
            "files",
            ListOf(FilePath().then(_address_file), "files"),
            "files of addresses and networks, one a line, # comments (read again on reload)",
            default="[]",
        ),
    ],
    _deny,
)

LIMITS = Table(
    [
        Key(
            "handshake_timeout",
            POSITIVE,
            "seconds from accept to the end of the TLS handshake",
            default="5",
        ),
        Key(
            "request_timeout",
            POSITIVE,
            "seconds from accept to the complete request line",
            default="10",
        ),
        Key(
            "response_timeout",
            POSITIVE,
            "seconds for the handler to produce its response (and each chunk of a stream)",
            default="30",
        ),
        Key(
            "write_timeout",
            POSITIVE,
            "the floor of a response's write budget, in seconds",
            default="10",
        ),
        Key(
            "write_rate",
            POSITIVE,
            "bytes a second a client must read beyond that floor",
            default="16384",
        ),
        Key("max_connections", Integer(minimum=1), "concurrent connections", default="1024"),
        Key(
            "max_connections_per_address",
            Integer(minimum=1),
            "concurrent connections from one address group",
            default="32",
        ),
        Key(
            "ipv6_prefix",
            Integer(1, 128),
            "IPv6 addresses are grouped by this prefix",
            default="64",
        ),
        Key(
            "block_after",
            Integer(minimum=0),
            "requests in a row that ignore a 44 before a block (0: never block)",
            default="10",
        ),
        Key(
            "block_first",
            POSITIVE,
            "seconds of the first block; each further one doubles",
            default="60",
        ),
        Key("block_longest", POSITIVE, "seconds of the longest block", default="86400"),
        Key(
            "shutdown_grace",
            POSITIVE,
            "seconds in-flight requests may take to finish on SIGTERM",
            default="10",
        ),
        Key(
            "trusted",
            NETWORKS.then(tuple),
            "addresses and networks never capped per address, rate-limited or blocked",
            default='["127.0.0.0/8", "::1"]',
        ),
    ],
    Limits,
)


def _host(**settings: Any) -> dict[str, Any]:
    return settings


HOST = Table(
    [
        Key("cert", FilePath(), "certificate (PEM; a chain is fine) of this hostname"),
        Key("key", FilePath(), "private key (PEM) of this hostname's certificate"),
        Key("root", FilePath(), "capsule directory of this hostname"),
        Key("cgi", CGI_TABLES.then(tuple), "CGI directories of this hostname"),
        Key("scgi", SCGI_TABLES.then(tuple), "SCGI applications of this hostname"),
        Key("titan", TITAN_TABLES.then(tuple), "Titan uploads of this hostname"),
    ],
    _host,
)


def _config(
    *,
    hostnames: list[str] | None = None,
    hosts: dict[str, dict[str, Any]] | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    **fields: Any,
) -> Config:
    """The :class:`Config`: hostnames, per-host tables and the top-level certificate combined."""
    by_name = {name: HostConfig(name) for name in hostnames or ["localhost"]}
    for name, settings in (hosts or {}).items():
        by_name[name] = HostConfig(name, **settings)
    first, *others = by_name.values()
    first = replace(
        first,
        cert=first.cert if cert is None else cert,
        key=first.key if key is None else key,
    )
    every = [first, *others]
    unpaired = [host.name for host in every if (host.cert is None) != (host.key is None)]
    if unpaired:
        raise Invalid(
            *(f"{name}: give both a certificate and a key, or neither" for name in unpaired)
        )
    return Config(hosts=every, **fields)


SCHEMA = Table(
    [
        Key(
            "host",
            ListOf(String(), "strings"),
            "addresses to listen on ('::' for every IPv6 and IPv4 address)",
            default='["127.0.0.1"]',
            to="listen",
        ),
        Key(
            "port",
            Integer(0, 65535, expected="a port number (0 to 65535)"),
            "TCP port",
            default="1965",
        ),
        Key(
            "hostnames",
            ListOf(HOSTNAME, "hostnames", empty="at least one hostname is needed"),
            "the names this server answers for (other hosts get 53)",
            default='["localhost"]',
        ),
        Key("root", FilePath(), "the capsule directory (default: the bundled demo capsule)"),
        Key(
            "state",
            FilePath(),
            "state directory: server certificates and the identity store",
            default="$XDG_STATE_HOME/hospes",
        ),
        Key("cert", FilePath(), "certificate (PEM; a chain is fine) of the first hostname"),
        Key("key", FilePath(), "private key (PEM) of the first hostname's certificate"),
        Key("access_log", _LogTarget(), "where the access log goes", default='"-"'),
        Key(
            "log_level",
            OneOf({name: name for name in ("debug", "info", "warning", "error")}, fold_case=True),
            "the least severe server log messages shown",
            default='"info"',
        ),
        Key(
            "clock_skew",
            Number(minimum=0).then(_seconds),
            "seconds of client clock error tolerated on certificate dates",
            default="300",
        ),
        Key("workers", Integer(minimum=1), "server processes sharing the port", default="1"),
        Key(
            "database",
            String().then(_database_url, "a postgresql:// URL"),
            "the identity store shared by several nodes (default: SQLite in the state directory)",
        ),
        Key(
            "public_ports",
            ListOf(PORT, "port numbers").then(tuple),
            "ports request URLs may name besides 'port' (a load balancer's, a port forward's)",
            default="[]",
        ),
        Key(
            "proxy_from",
            NETWORKS.then(tuple),
            "proxies that send a PROXY header (v1 or v2); when set, only they may connect",
            default="[]",
        ),
        Key(
            "hosts",
            MapOf(HOSTNAME, HOST, expected="a table of hostnames"),
            "per-hostname settings",
        ),
        Key(
            "access",
            ArrayOf(ACCESS_RULE),
            "access rules (the longest matching path wins)",
            default="[]",
        ),
        Key("limits", LIMITS, "deadlines, connection caps and blocking"),
        Key(
            "rate_limit",
            ArrayOf(RATE_RULE, _rate_rules),
            "rate limits by path prefix (the longest matching path wins)",
            to="rate_limits",
        ),
        Key("deny", DENY, "addresses and networks refused at accept"),
        Key("cgi", CGI_TABLES, "CGI: executables answering under a URL prefix", default="[]"),
        Key("scgi", SCGI_TABLES, "SCGI applications answering under a URL prefix", default="[]"),
        Key("titan", TITAN_TABLES, "Titan uploads under a URL prefix", default="[]"),
    ],
    _config,
)
"""hospes.toml, every key of it."""


def parse_config(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    """Build a :class:`Config` from a parsed TOML document.

    Raises :class:`ConfigError` listing every mistake in it.
    """
    base = source.parent if source else Path.cwd()
    config = parse(SCHEMA, raw, str(source) if source else "config", base)
    config.source = source
    return config


def read_config_file(path: Path) -> dict[str, Any]:
    """The raw TOML document of a configuration file."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(Problem(str(path), "", f"not valid TOML: {exc}")) from None


def load_config(path: Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read and validate a TOML configuration file, with ``overrides`` (flags) applied over it."""
    raw = read_config_file(path)
    raw.update(overrides or {})
    return parse_config(raw, path)
