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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, overload

from ..app.access import AccessRule, Requirement, path_matches
from ..app.redirects import RedirectRule, redirect_chain
from ..gateways.cgi import DEFAULT_MAX_OUTPUT, CGIMount
from ..gateways.scgi import SCGIMount, parse_scgi_address
from ..gateways.titan import DEFAULT_MAX_SIZE, TitanMount
from ..gemini.fingerprint import parse_fingerprint
from ..gemini.protocol import Status, check_header
from ..gemini.url import URLError, normalize_path, parse_url
from ..paths import default_state_dir
from ..policy.addresses import parse_network, read_address_file
from ..policy.limits import Limits
from ..policy.ratelimit import RateRule
from ..store.database_url import is_database_url
from .schema import (
    ArrayOf,
    Boolean,
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
    did_you_mean,
    location,
    parse,
)

__all__ = [
    "DEFAULT_RATE_RULE",
    "SCHEMA",
    "AccountsConfig",
    "AdminConfig",
    "Config",
    "HostConfig",
    "Site",
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
class AccountsConfig:
    """``[accounts]``: where the account pages are mounted, and where new members are sent.

    None is "not set here" (a host's table falls back to the top-level one);
    ``mount = False`` mounts no pages (on that host).
    """

    mount: str | Literal[False] | None = None
    """A path prefix ending in ``/`` (``/account/``), or False."""
    members_url: str | None = None
    """Where registering or linking a device leads (default: the account page)."""


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """``[admin]``: where the admin capsule is mounted, and whose certificates may use it.

    None is "not set here" (a host's table falls back to the top-level one, key by
    key); ``mount = False`` mounts no admin capsule (on that host).
    """

    mount: str | Literal[False] | None = None
    """A path prefix ending in ``/`` (``/admin/``), or False."""
    admins: frozenset[str] | None = None
    """Certificate or key fingerprints (canonical) of the admins."""
    lists: tuple[str, ...] | None = None
    """Named allow-lists whose certificates and keys are admins too."""


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Settings of one hostname: its certificate (created if None), capsule root, gateways, options.

    The serving options (``lang`` and the rest) are None where the host's table
    does not set them: the top-level setting applies (see :meth:`Config.site`).
    """

    name: str
    cert: Path | None = None
    key: Path | None = None
    root: Path | None = None
    cgi: tuple[CGIMount, ...] = ()
    scgi: tuple[SCGIMount, ...] = ()
    titan: tuple[TitanMount, ...] = ()
    """Gateways of this hostname, besides (and at the same path, instead of) the global ones."""
    # -- serving options (each also top-level; the host's own wins) --
    lang: str | None = None
    charset: str | None = None
    mime: Mapping[str, str] | None = None
    listing: bool | None = None
    accounts: AccountsConfig | None = None
    admin: AdminConfig | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """What one hostname serves: its own settings over the top-level ones, resolved."""

    name: str
    root: Path | None
    """The capsule directory; None: none (the demo capsule when no host has one)."""
    root_key: str
    """Where ``root`` is set (``root``, ``hosts."a.example".root``), for messages."""
    lang: str | None = None
    charset: str | None = None
    mime: Mapping[str, str] = field(default_factory=dict)
    """The ``[mime]`` table: the host's entries over the top-level ones."""
    listing: bool = False
    accounts: str | None = None
    """Where the account pages are mounted (``/account/``), or None."""
    members_url: str | None = None
    """Where a new member is sent (the account pages' own page when None)."""
    admin: str | None = None
    """Where the admin capsule is mounted (``/admin/``), or None."""
    admins: frozenset[str] = frozenset()
    """The admins' certificate or key fingerprints."""
    admin_lists: tuple[str, ...] = ()
    """The allow-lists of further admins."""


class _Hostnames:
    """``Config.hostnames``: the names of ``Config.hosts``; setting it sets plain hosts.

    A dataclass field with this descriptor makes ``Config(hostnames=[...])``
    work while ``hosts`` stays the one record: names equal to the hosts'
    change nothing (so ``dataclasses.replace`` keeps per-host settings), other
    names replace the hosts with plain ones, normalised as request hosts are.
    """

    @overload
    def __get__(self, config: None, owner: type[Any]) -> None: ...
    @overload
    def __get__(self, config: Config, owner: type[Any]) -> list[str]: ...
    def __get__(self, config: Config | None, owner: type[Any]) -> list[str] | None:
        if config is None:
            return None  # the field's default: "not given"
        return [host.name for host in config.hosts]

    def __set__(self, config: Config, names: Sequence[str] | None) -> None:
        if names is None:
            return
        if isinstance(names, str):
            raise TypeError("hostnames is a list of names, not one string")
        normalised = [_hostname(name) for name in names]
        if not normalised:
            raise ValueError("at least one hostname is needed")
        if normalised != [host.name for host in config.hosts]:
            config.hosts = [HostConfig(name) for name in normalised]


@dataclass
class Config:
    """Everything ``hospes serve`` needs.

    ``Config(hostnames=["example.org"])`` is short for ``hosts=[HostConfig("example.org")]``.
    """

    listen: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 1965
    hosts: list[HostConfig] = field(default_factory=lambda: [HostConfig("localhost")])
    hostnames: _Hostnames = _Hostnames()
    """The names this server answers for, normalised as request hosts are (from ``hosts``)."""
    root: Path | None = None
    """The capsule to serve; None serves the bundled demo capsule."""
    state: Path = field(default_factory=default_state_dir)
    access: list[AccessRule] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    rate_limits: list[RateRule] = field(default_factory=lambda: [DEFAULT_RATE_RULE])
    deny: tuple[str, ...] = ()
    """Addresses and networks refused at accept (the file entries included)."""
    access_log: str = "-"
    access_log_fingerprint: str = "short"
    """``short`` (``SHA256:`` and 12 hex digits) or ``full`` fingerprints in the access log."""
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
    # -- serving options (issue 10): every host's default, each overridable per host --
    lang: str | None = None
    """Added to ``text/gemini`` files as ``; lang=``."""
    charset: str | None = None
    """Added to ``text/*`` files as ``; charset=`` (for text that is not UTF-8)."""
    mime: dict[str, str] = field(default_factory=dict)
    """Extension → MIME type, over the built-in table."""
    listing: bool = False
    """Directories without an index answer a generated listing."""
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    redirects: list[RedirectRule] = field(default_factory=list)

    def site(self, host: HostConfig) -> Site:
        """What ``host`` serves: its own settings, the top-level ones where it has none."""
        accounts = host.accounts or AccountsConfig()
        mount = self.accounts.mount if accounts.mount is None else accounts.mount
        admin = host.admin or AdminConfig()
        admin_mount = self.admin.mount if admin.mount is None else admin.mount
        admins = self.admin.admins if admin.admins is None else admin.admins
        admin_lists = self.admin.lists if admin.lists is None else admin.lists
        return Site(
            name=host.name,
            root=host.root if host.root is not None else self.root,
            root_key=location(("hosts", host.name, "root")) if host.root is not None else "root",
            lang=host.lang if host.lang is not None else self.lang,
            charset=host.charset if host.charset is not None else self.charset,
            mime={**self.mime, **(host.mime or {})},
            listing=host.listing if host.listing is not None else self.listing,
            accounts=mount or None,
            members_url=accounts.members_url or self.accounts.members_url,
            admin=admin_mount or None,
            admins=admins or frozenset(),
            admin_lists=admin_lists or (),
        )

    def sites(self) -> list[Site]:
        """:meth:`site` of every host, the first (default) hostname first."""
        return [self.site(host) for host in self.hosts]


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
    if "/" in name or name.count(":") == 1:
        raise ValueError(f"expected a host name, got {name!r}{_host_of(name)}")
    try:
        url = parse_url(f"gemini://{name}/" if ":" not in name else f"gemini://[{name}]/")
    except URLError as exc:
        # The position would count from the start of the URL built here, not of the name.
        reason = re.sub(r" at position \d+", "", str(exc))
        raise ValueError(f"invalid hostname {name!r}: {reason}") from None
    if url.port is not None or url.path != "/" or not url.host:
        raise ValueError(f"invalid hostname {name!r}")
    return url.host


def _host_of(text: str) -> str:
    """`` (write 'example.org')``: the host name in a URL or ``host:port``, when there is one."""
    try:
        url = parse_url(text if "://" in text else f"gemini://{text}")
    except URLError:
        return ""
    if not url.host or url.host == text:
        return ""
    port = f", and the port as port = {url.port}" if url.port is not None else ""
    return f" (write {url.host!r}{port})"


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
    hosts: frozenset[str] = frozenset(),
) -> AccessRule:
    if require is not Requirement.ALLOWLIST and (fingerprints or lists):
        raise Invalid("'fingerprints' and 'lists' only apply to require = 'allowlist'")
    if require is Requirement.ALLOWLIST and not (fingerprints or lists):
        raise Invalid("an allowlist rule needs 'fingerprints' or 'lists'")
    return AccessRule(
        path=path, require=require, fingerprints=fingerprints, lists=lists, hosts=hosts
    )


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
        Key(
            "host",
            ListOf(HOSTNAME, "hostnames").then(frozenset),
            "the hostnames the rule applies to (default: every one)",
            to="hosts",
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


# -- serving options: files, account pages, redirects (top level and per host) -----------------

# One BCP 47 tag: a list ("en,fr") is not a MIME token, and hospes sends only valid headers.
_LANG = re.compile(r"\A[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*\Z")
_TOKEN = re.compile(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")


def _lang(text: str) -> str:
    if not _LANG.match(text):
        raise ValueError(f"expected a language tag such as 'en' or 'pt-BR', got {text!r}")
    return text


def _charset(text: str) -> str:
    """A character set Python (so a person checking the files) knows, as a MIME parameter."""
    if not _TOKEN.match(text):
        raise ValueError(f"expected a character set name such as 'iso-8859-1', got {text!r}")
    try:
        "".encode(text)  # a text encoding, not hex or zlib
    except LookupError:
        raise ValueError(f"unknown character set {text!r}") from None
    return text.lower()


def _extension(text: str) -> str:
    extension = text if text.startswith(".") else f".{text}"
    if len(extension) < 2 or not _TOKEN.match(extension) or extension.count(".") != 1:
        raise ValueError(f"expected a file extension such as '.gmi', got {text!r}")
    return extension.lower()


def _mime_type(text: str) -> str:
    try:
        check_header(Status.SUCCESS, text)
    except ValueError:
        raise ValueError(
            f"expected a MIME type such as 'text/plain' or 'text/gemini; lang=fr', got {text!r}"
        ) from None
    return text


def _canonical_path(path: str) -> str:
    """A path as requests' are compared: starting with '/', no dot segments or doubled '/'."""
    _url_path(path)
    if normalize_path(path) != path:
        raise ValueError(f"write the path as requests reach it: {normalize_path(path)!r}")
    return path


class _Mount(Type["str | Literal[False]"]):
    """A path prefix to mount pages at (ending in '/'), or ``false`` for none."""

    kinds = (str, bool)

    def __init__(self, example: str = "/account/", pages: str = "the account pages") -> None:
        self.example = example
        self.pages = pages
        self.expected = f"a path such as '{example}', or false"

    def make(self, value: str | bool, at: Context) -> str | Literal[False]:
        """The prefix, ending in '/'; False as it is."""
        if value is True:
            raise Invalid(f"expected a path such as '{self.example}' (true says nothing of where)")
        if value is False:
            return False
        try:
            path = _canonical_path(str(value))
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if path == "/":
            raise Invalid(f"'/' would hide the whole capsule behind {self.pages}")
        return path if path.endswith("/") else f"{path}/"


HOSTNAMES = ListOf(HOSTNAME, "hostnames").then(frozenset)
LANG = String().then(_lang, "a language tag such as 'en'")
CHARSET = String().then(_charset, "a character set such as 'iso-8859-1'")
MIME_TABLE = MapOf(
    String().then(_extension, "a file extension"),
    String().then(_mime_type, "a MIME type"),
    expected="a table of extensions and MIME types",
    placeholder=".EXT",
)

ACCOUNTS = Table(
    [
        Key(
            "mount",
            _Mount(),
            "where the register, link and certificates pages are (false: nowhere)",
        ),
        Key(
            "members_url",
            URL_PATH,
            "where registering or linking a device leads (default: the account page)",
        ),
    ],
    AccountsConfig,
)

ADMIN = Table(
    [
        Key(
            "mount",
            _Mount("/admin/", "the admin capsule"),
            "where the admin capsule is (false: nowhere)",
        ),
        Key("admins", FINGERPRINTS, "certificate or key fingerprints of the admins"),
        Key(
            "lists",
            LIST_NAMES,
            "named allow-lists (managed with 'hospes allow') of further admins",
        ),
    ],
    AdminConfig,
)

# Each serving option is a key of the top level and of [hosts."name"]; the host's wins.
SERVING_OPTIONS: list[Key[Any]] = [
    Key("lang", LANG, "language of text/gemini files, added to their type as '; lang='"),
    Key("charset", CHARSET, "character set of text files that are not UTF-8"),
    Key("mime", MIME_TABLE, "extension to MIME type, over the built-in table", default="{}"),
    Key("listing", Boolean(), "list a directory that has no index.gmi", default="false"),
    Key("accounts", ACCOUNTS, "the account pages, mounted for any capsule"),
    Key("admin", ADMIN, "the admin capsule: accounts, bans and allow-lists over Gemini"),
]


def _redirect(
    path: str,
    target: str | None = None,
    status: int = Status.REDIRECT_PERMANENT,
    exact: bool | None = None,
    hosts: frozenset[str] = frozenset(),
) -> RedirectRule:
    if exact is None:
        exact = not path.endswith("/")
    if status == Status.GONE:
        if target is not None:
            raise Invalid("a 52 (gone) sends nobody anywhere: remove 'to'")
        return RedirectRule(path, None, status, exact, hosts)
    if target is None:
        raise Invalid("missing 'to' (the path or URL to send visitors to)")
    if not target.startswith("/"):
        try:
            url = parse_url(target)
        except URLError as exc:
            raise Invalid(
                f"'to' is a path starting with '/' or an absolute URL, got {target!r} ({exc})"
            ) from None
        if url.fragment is not None:
            raise Invalid(f"'to' cannot have a fragment ('#'), got {target!r}")
        if not exact and url.query is not None:
            raise Invalid(
                f"a prefix redirect appends the rest of the path to 'to', "
                f"which cannot have a query, got {target!r}"
            )
    elif any(char in target for char in "\r\n\t"):
        raise Invalid(f"'to' has a control character: {target!r}")
    return RedirectRule(path, target, status, exact, hosts)


def _redirects(redirects: list[RedirectRule], at: Context) -> list[RedirectRule]:
    """Each path redirected once per host; no chain that loops or outlasts clients."""
    seen: dict[tuple[str, bool], list[frozenset[str]]] = {}
    reported = len(at.problems)
    for index, redirect in enumerate(redirects):
        # "/a" and "/a/" are one prefix, as access rules' are.
        path = redirect.path if redirect.exact else redirect.path.rstrip("/")
        earlier = seen.setdefault((path, redirect.exact), [])
        if any(not hosts or not redirect.hosts or hosts & redirect.hosts for hosts in earlier):
            at.at(index).at("from").report(f"{redirect.path!r} has a redirect already")
        earlier.append(redirect.hosts)
        target = redirect.destination_path(redirect.path)
        if target is not None and redirect.covers(target):
            at.at(index).at("to").report(
                f"{redirect.target!r} is itself under {redirect.path!r}: "
                "it would redirect forever (give it match = 'exact'?)"
            )
    if len(at.problems) > reported:
        return redirects
    chain = redirect_chain(redirects)
    if chain is not None:
        looping = chain[-1] in chain[:-1]
        at.report(
            ("these redirects loop: " if looping else "too many redirects in a row: ")
            + " -> ".join(chain)
            + ("" if looping else " (clients follow 5 at most)")
        )
    return redirects


REDIRECT = Table(
    [
        Key(
            "from",
            String().then(_canonical_path, "a path starting with '/'"),
            "the path (or, ending in '/', the prefix) that moved",
            required=True,
            to="path",
        ),
        Key(
            "to",
            String("a path or a URL"),
            "where it went: a path here, or an absolute URL",
            to="target",
        ),
        Key(
            "status",
            OneOf({30: 30, 31: 31, 52: 52}),
            "31 (moved for good), 30 (for now) or 52 (gone, no 'to')",
            default="31",
        ),
        Key(
            "match",
            OneOf({"prefix": False, "exact": True}),
            "'prefix' (the path and below) or 'exact' (default: prefix if 'from' ends in '/')",
            to="exact",
        ),
        Key("host", HOSTNAMES, "the hostnames it applies to (default: every one)", to="hosts"),
    ],
    _redirect,
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
        *(replace(key, default=None) for key in SERVING_OPTIONS),
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
    names = hostnames or ["localhost"]
    unknown = _unknown_hosts(names, hosts or {}, fields)
    by_name = {name: HostConfig(name) for name in names}
    for name, settings in (hosts or {}).items():
        by_name[name] = HostConfig(name, **settings)
    first, *others = by_name.values()
    first = replace(
        first,
        cert=first.cert if cert is None else cert,
        key=first.key if key is None else key,
    )
    every = [first, *others]
    unpaired = [
        f"{host.name}: give both a certificate and a key, or neither"
        for host in every
        if (host.cert is None) != (host.key is None)
    ]
    if unknown or unpaired:
        raise Invalid(*unknown, *unpaired)
    config = Config(hosts=every, **fields)
    mounts = _admin_mounts(config)
    if mounts:
        raise Invalid(*mounts)
    return config


def _admin_mounts(config: Config) -> list[str]:
    """What is wrong with where the admin capsule is mounted, and for whom."""
    problems = []
    sites = config.sites()
    named = (
        config.admin.admins
        or config.admin.lists
        or any(
            host.admin is not None and (host.admin.admins or host.admin.lists)
            for host in config.hosts
        )
    )
    if named and not any(site.admin for site in sites):
        problems.append(
            "[admin] names admins but no host mounts the admin capsule: "
            'add mount = "/admin/" (any path) to [admin]'
        )
    for site in sites:
        if site.admin is None:
            continue
        table = "[admin]" if len(sites) == 1 else f"the [admin] of {site.name}"
        if not (site.admins or site.admin_lists):
            problems.append(
                f"{table} mounts the admin capsule at {site.admin} for nobody: "
                'add admins = ["SHA256:…"] (certificate or key fingerprints) '
                'or lists = ["admins"] (allow-lists: hospes allow add admins FINGERPRINT)'
            )
        accounts = site.accounts
        if accounts is not None and (
            path_matches(site.admin, accounts) or path_matches(accounts, site.admin)
        ):
            problems.append(
                f"{table}: the admin capsule at {site.admin} and the account pages at "
                f"{accounts} overlap; mount them apart"
            )
    return problems


def _unknown_hosts(names: list[str], hosts: Mapping[str, object], fields: Any) -> list[str]:
    """What names a hostname not in ``hostnames`` (in a table or a rule): a typo is no new host."""
    named: list[tuple[str, str]] = [(location(("hosts", name)), name) for name in hosts]
    for key, rules in (("access", fields.get("access")), ("redirect", fields.get("redirects"))):
        for index, rule in enumerate(rules or ()):
            named += [(location((key, index, "host")), host) for host in sorted(rule.hosts)]
    unknown = []
    for where, name in named:
        if name not in names:
            close = did_you_mean(name, names)
            hint = f" (did you mean {close!r}?)" if close else ""
            unknown.append(
                f"{where}: {name!r} is not one of hostnames {names}{hint}; "
                "add it to hostnames, or correct it"
            )
    return unknown


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
            "access_log_fingerprint",
            OneOf({name: name for name in ("short", "full")}, fold_case=True),
            "client certificate fingerprints in the access log: 12 hex digits, or all 64",
            default='"short"',
        ),
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
        # -- serving options (also per [hosts."name"]) and redirects --
        *SERVING_OPTIONS,
        Key(
            "redirect",
            ArrayOf(REDIRECT, _redirects),
            "redirects and gone paths, applied before access rules",
            default="[]",
            to="redirects",
        ),
    ],
    _config,
)
"""hospes.toml, every key of it."""


def parse_config(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    """Build a :class:`Config` from a parsed TOML document.

    Raises :class:`ConfigError` listing every mistake in it.
    """
    if source is not None:
        source = source.absolute()  # relative paths in it stay right whatever the directory
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
