"""Server configuration: TOML file and command-line flags → one validated :class:`Config`.

Every setting can be given in the file and overridden by a flag.  Mistakes
(unknown keys, wrong types, unreadable paths, malformed fingerprints) raise
:class:`ConfigError` naming the file and the key, so ``hospes serve`` can say
exactly what to fix.  Relative paths in a file are relative to that file.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .app.access import AccessRule, Requirement
from .gemini.fingerprint import parse_fingerprint
from .gemini.url import URLError, parse_url
from .paths import default_state_dir
from .policy.addresses import AddressError, parse_network, read_address_file
from .policy.limits import Limits
from .policy.ratelimit import RateRule

__all__ = [
    "DEFAULT_RATE_RULE",
    "Config",
    "ConfigError",
    "HostConfig",
    "load_config",
    "parse_config",
    "parse_rate",
    "read_config_file",
]

_TOP_LEVEL = {
    "host": "address(es) to listen on",
    "port": "TCP port",
    "hostnames": "names this server answers for",
    "root": "capsule directory",
    "state": "state directory",
    "cert": "certificate of the first hostname",
    "key": "key of the first hostname",
    "access_log": "'-' (stdout), a file, or 'off'",
    "log_level": "debug, info, warning or error",
    "clock_skew": "seconds of certificate clock skew allowed",
    "workers": "number of server processes",
    "hosts": "per-hostname settings",
    "access": "access rules",
    "limits": "deadlines, connection caps and blocking",
    "rate_limit": "rate limits per path prefix",
    "deny": "addresses and networks refused at accept",
}
_HOST_KEYS = {"cert", "key", "root"}
_ACCESS_KEYS = {"path", "require", "fingerprints", "lists"}
_RATE_KEYS = {"path", "per_address", "per_key", "burst"}
_DENY_KEYS = {"addresses", "files"}
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


class ConfigError(ValueError):
    """A configuration mistake; the message says where and what."""


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Settings of one hostname: its certificate (created if None) and capsule root."""

    name: str
    cert: Path | None = None
    key: Path | None = None
    root: Path | None = None


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
    source: Path | None = None

    @property
    def hostnames(self) -> list[str]:
        """The names this server answers for, normalised as request hosts are."""
        return [host.name for host in self.hosts]


def normalize_hostname(name: str, where: str) -> str:
    """Normalise a configured hostname exactly as request URLs' hosts are (IDNA, case, dot)."""
    try:
        url = parse_url(f"gemini://{name}/" if ":" not in name else f"gemini://[{name}]/")
    except URLError as exc:
        raise ConfigError(f"{where}: invalid hostname {name!r}: {exc}") from None
    if url.port is not None or url.path != "/" or not url.host:
        raise ConfigError(f"{where}: invalid hostname {name!r}")
    return url.host


def _unknown(keys: Mapping[str, Any], allowed: Mapping[str, str] | set[str], where: str) -> None:
    for key in keys:
        if key not in allowed:
            # A transposition ("prot") is the likeliest typo; difflib alone prefers "root".
            close = [name for name in allowed if sorted(name) == sorted(key)]
            close = close or difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}")


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


def _path(value: Any, base: Path, where: str) -> Path:
    text = _expect(value, str, where, "a path")
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path)


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = _expect(value, list, where, "a string or a list of strings")
    return [_expect(item, str, f"{where}[{index}]", "a string") for index, item in enumerate(items)]


def _positive(value: Any, where: str, *, integer: bool = False) -> Any:
    number = _expect(value, int if integer else (int, float), where, "a positive number")
    if number <= 0:
        raise ConfigError(f"{where}: expected a positive number, got {number!r}")
    return number


def _access_rule(raw: Any, where: str) -> AccessRule:
    table = _expect(raw, dict, where, "a table")
    _unknown(table, _ACCESS_KEYS, where)
    if "path" not in table or "require" not in table:
        raise ConfigError(f"{where}: an access rule needs 'path' and 'require'")
    path = _expect(table["path"], str, f"{where}.path", "a path")
    if not path.startswith("/"):
        raise ConfigError(f"{where}.path: must start with '/', got {path!r}")
    try:
        require = Requirement(table["require"])
    except ValueError:
        choices = ", ".join(repr(item.value) for item in Requirement)
        raise ConfigError(
            f"{where}.require: expected one of {choices}, got {table['require']!r}"
        ) from None
    fingerprints = set()
    for index, text in enumerate(_strings(table.get("fingerprints", []), f"{where}.fingerprints")):
        try:
            fingerprints.add(parse_fingerprint(text))
        except ValueError as exc:
            raise ConfigError(f"{where}.fingerprints[{index}]: {exc}") from None
    lists = tuple(_strings(table.get("lists", []), f"{where}.lists"))
    if require is not Requirement.ALLOWLIST and (fingerprints or lists):
        raise ConfigError(
            f"{where}: 'fingerprints' and 'lists' only apply to require = 'allowlist'"
        )
    if require is Requirement.ALLOWLIST and not (fingerprints or lists):
        raise ConfigError(f"{where}: an allowlist rule needs 'fingerprints' or 'lists'")
    return AccessRule(path=path, require=require, fingerprints=frozenset(fingerprints), lists=lists)


def _limits(raw: Any, where: str) -> Limits:
    table = _expect(raw, dict, where, "a table")
    names = {item.name: item for item in fields(Limits)}
    _unknown(table, set(names), where)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "trusted":
            values[key] = tuple(_networks(value, f"{where}.trusted"))
        elif key == "block_after":
            number = _expect(value, int, f"{where}.{key}", "a whole number")
            if number < 0:
                raise ConfigError(f"{where}.{key}: must not be negative (0 never blocks)")
            values[key] = number
        else:
            integer = names[key].type in ("int", int)
            values[key] = _positive(value, f"{where}.{key}", integer=integer)
    if values.get("ipv6_prefix", 64) > 128:
        raise ConfigError(f"{where}.ipv6_prefix: expected 1 to 128, got {values['ipv6_prefix']}")
    return Limits(**values)


def _networks(value: Any, where: str) -> list[str]:
    entries = _strings(value, where)
    for index, entry in enumerate(entries):
        try:
            parse_network(entry)
        except AddressError as exc:
            raise ConfigError(f"{where}[{index}]: {exc}") from None
    return entries


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


def _rate_rule(raw: Any, where: str) -> RateRule:
    table = _expect(raw, dict, where, "a table")
    _unknown(table, _RATE_KEYS, where)
    path = _expect(table.get("path", "/"), str, f"{where}.path", "a path")
    if not path.startswith("/"):
        raise ConfigError(f"{where}.path: must start with '/', got {path!r}")
    rates: dict[str, tuple[float, float] | None] = {}
    for key in ("per_address", "per_key"):
        if key in table:
            text = _expect(table[key], str, f"{where}.{key}", "a rate such as '10/min'")
            try:
                rates[key] = parse_rate(text)
            except ValueError as exc:
                raise ConfigError(f"{where}.{key}: {exc}") from None
    if not rates:
        raise ConfigError(f"{where}: a rate limit needs 'per_address' or 'per_key' (or both)")
    given = [rate for rate in rates.values() if rate is not None]
    if "burst" in table:
        burst = _positive(table["burst"], f"{where}.burst", integer=True)
    else:
        # As many at once as a rate's count ("10/min": 10), the smaller of the two.
        burst = max(1.0, min((count for count, _ in given), default=1.0))

    def per_second(key: str) -> float | None:
        rate = rates.get(key)
        return None if rate is None else rate[0] / rate[1]

    return RateRule(
        path=path,
        per_address=per_second("per_address"),
        per_key=per_second("per_key"),
        burst=float(burst),
    )


def _rate_rules(raw: Any, where: str) -> list[RateRule]:
    tables = _expect(raw, list, where, "an array of tables ([[rate_limit]])")
    rules = [_rate_rule(table, f"{where}[{index}]") for index, table in enumerate(tables)]
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.path in seen:
            raise ConfigError(f"{where}[{index}].path: {rule.path!r} has a rule already")
        seen.add(rule.path)
    if "/" not in seen:
        rules.append(DEFAULT_RATE_RULE)
    return rules


def _deny(raw: Any, base: Path, where: str) -> tuple[str, ...]:
    table = _expect(raw, dict, where, "a table")
    _unknown(table, _DENY_KEYS, where)
    entries = _networks(table.get("addresses", []), f"{where}.addresses")
    for index, text in enumerate(_strings(table.get("files", []), f"{where}.files")):
        path = _path(text, base, f"{where}.files[{index}]")
        try:
            entries.extend(read_address_file(path))
        except OSError as exc:
            raise ConfigError(
                f"{where}.files[{index}]: cannot read {path}: {exc.strerror}"
            ) from None
        except AddressError as exc:
            raise ConfigError(f"{where}.files[{index}]: {exc}") from None
    return tuple(entries)


def parse_config(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    """Build a :class:`Config` from a parsed TOML document."""
    name = str(source) if source else "config"
    base = source.parent if source else Path.cwd()
    _unknown(raw, _TOP_LEVEL, name)
    config = Config(source=source)
    if "host" in raw:
        config.listen = _strings(raw["host"], f"{name}: host")
    if "port" in raw:
        port = _expect(raw["port"], int, f"{name}: port", "a port number")
        if not 0 <= port <= 65535:
            raise ConfigError(f"{name}: port: {port} is not a TCP port")
        config.port = port
    if "root" in raw:
        config.root = _path(raw["root"], base, f"{name}: root")
    if "state" in raw:
        config.state = _path(raw["state"], base, f"{name}: state")
    names = _strings(raw.get("hostnames", ["localhost"]), f"{name}: hostnames")
    if not names:
        raise ConfigError(f"{name}: hostnames: at least one hostname is needed")
    per_host = _expect(raw.get("hosts", {}), dict, f"{name}: hosts", "a table of hostnames")
    hosts: dict[str, HostConfig] = {}
    for entry in names:
        normalized = normalize_hostname(entry, f"{name}: hostnames")
        hosts[normalized] = HostConfig(normalized)
    for entry, table in per_host.items():
        where = f"{name}: hosts.{entry}"
        normalized = normalize_hostname(entry, where)
        _expect(table, dict, where, "a table")
        _unknown(table, _HOST_KEYS, where)
        hosts[normalized] = HostConfig(
            normalized,
            cert=_path(table["cert"], base, f"{where}.cert") if "cert" in table else None,
            key=_path(table["key"], base, f"{where}.key") if "key" in table else None,
            root=_path(table["root"], base, f"{where}.root") if "root" in table else None,
        )
    config.hosts = list(hosts.values())
    if "cert" in raw or "key" in raw:
        first = config.hosts[0]
        config.hosts[0] = HostConfig(
            first.name,
            cert=_path(raw["cert"], base, f"{name}: cert") if "cert" in raw else first.cert,
            key=_path(raw["key"], base, f"{name}: key") if "key" in raw else first.key,
            root=first.root,
        )
    for host in config.hosts:
        if (host.cert is None) != (host.key is None):
            raise ConfigError(f"{name}: {host.name}: give both a certificate and a key, or neither")
    rules = _expect(raw.get("access", []), list, f"{name}: access", "an array of tables")
    config.access = [
        _access_rule(rule, f"{name}: access[{index}]") for index, rule in enumerate(rules)
    ]
    if "limits" in raw:
        config.limits = _limits(raw["limits"], f"{name}: limits")
    if "rate_limit" in raw:
        config.rate_limits = _rate_rules(raw["rate_limit"], f"{name}: rate_limit")
    if "deny" in raw:
        config.deny = _deny(raw["deny"], base, f"{name}: deny")
    if "access_log" in raw:
        target = _expect(raw["access_log"], str, f"{name}: access_log", "a string")
        if target not in ("-", "off"):
            target = str(_path(target, base, f"{name}: access_log"))
        config.access_log = target
    if "log_level" in raw:
        level = _expect(raw["log_level"], str, f"{name}: log_level", "a string").lower()
        if level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{name}: log_level: expected debug, info, warning or error")
        config.log_level = level
    if "clock_skew" in raw:
        seconds = _expect(raw["clock_skew"], (int, float), f"{name}: clock_skew", "seconds")
        if seconds < 0:
            raise ConfigError(f"{name}: clock_skew: must not be negative")
        config.clock_skew = dt.timedelta(seconds=seconds)
    if "workers" in raw:
        config.workers = _positive(raw["workers"], f"{name}: workers", integer=True)
    return config


def read_config_file(path: Path) -> dict[str, Any]:
    """The raw TOML document of a configuration file."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read and validate a TOML configuration file, with ``overrides`` (flags) applied over it."""
    raw = read_config_file(path)
    raw.update(overrides or {})
    return parse_config(raw, path)
