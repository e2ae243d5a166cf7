"""Configuration parsing: every key, every mistake named precisely."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.app.access import AccessRule, Requirement
from hospes.app.redirects import RedirectRule
from hospes.cli import main
from hospes.config import (
    DEFAULT_RATE_RULE,
    SCHEMA,
    AccountsConfig,
    AdminConfig,
    Config,
    ConfigError,
    HostConfig,
    Problem,
    load_config,
    parse_config,
    parse_rate,
    schema,
)
from hospes.gateways import CGIMount, SCGIMount, TitanMount
from hospes.policy.limits import Limits
from hospes.policy.ratelimit import RateRule

FP = "SHA256:" + "ab" * 32


def test_defaults():
    config = parse_config({})
    assert config.listen == ["127.0.0.1"]
    assert config.port == 1965
    assert config.hostnames == ["localhost"]
    assert config.root is None
    assert config.access == []
    assert config.clock_skew == dt.timedelta(minutes=5)


def test_full_file(tmp_path):
    path = tmp_path / "conf" / "hospes.toml"
    path.parent.mkdir()
    path.write_text(
        f"""
host = ["::", "127.0.0.1"]
port = 1966
hostnames = ["Example.ORG.", "bücher.example"]
root = "capsule"
state = "/var/lib/hospes"
access_log = "off"
log_level = "WARNING"
clock_skew = 60
workers = 2

[hosts."example.org"]
cert = "certs/example.crt"
key = "certs/example.key"
root = "/srv/example"

[[access]]
path = "/private/"
require = "allowlist"
fingerprints = ["{FP.upper().replace("SHA256:", "")}"]
lists = ["friends"]

[[access]]
path = "/members"
require = "account"

[limits]
request_timeout = 2.5
max_connections = 100
"""
    )
    config = load_config(path)
    assert config.listen == ["::", "127.0.0.1"]
    assert config.port == 1966
    assert config.hostnames == ["example.org", "xn--bcher-kva.example"]
    assert config.root == path.parent / "capsule"
    assert config.state == Path("/var/lib/hospes")
    assert config.access_log == "off"
    assert config.log_level == "warning"
    assert config.clock_skew == dt.timedelta(seconds=60)
    assert config.workers == 2
    example = config.hosts[0]
    assert example.cert == path.parent / "certs" / "example.crt"
    assert example.root == Path("/srv/example")
    first, second = config.access
    assert first.require is Requirement.ALLOWLIST
    assert first.fingerprints == frozenset({FP})
    assert first.lists == ("friends",)
    assert second.require is Requirement.ACCOUNT
    assert config.limits.request_timeout == 2.5
    assert config.limits.max_connections == 100
    assert config.limits.handshake_timeout == 5.0


def test_hostname_as_a_single_string():
    assert parse_config({"hostnames": "a.example"}).hostnames == ["a.example"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"port": 70000}, "port: expected a port number (0 to 65535), got 70000"),
        ({"port": True}, "expected a port number"),
        ({"hostnames": []}, "at least one hostname"),
        ({"hostnames": ["bad host"]}, "invalid hostname"),
        ({"hostnames": ["a/b"]}, "expected a host name, got 'a/b'"),
        ({"hostnames": ["gemini://a.example/"]}, "expected a host name, got 'gemini://a.exa"),
        ({"host": 5}, "a string or a list of strings"),
        ({"hosts": {"a": {"cert": "x"}}}, "give both a certificate and a key"),
        ({"hosts": {"a": {"colour": "x"}}}, "unknown setting 'colour'"),
        ({"access": [{"path": "private", "require": "certificate"}]}, "must start with '/'"),
        ({"access": [{"path": "/p/"}]}, "access[0]: missing 'require'"),
        ({"access": [{"path": "/p/", "require": "allowlist"}]}, "needs 'fingerprints' or 'lists'"),
        (
            {"access": [{"path": "/p/", "require": "account", "fingerprints": [FP]}]},
            "only apply to require = 'allowlist'",
        ),
        (
            {"access": [{"path": "/p/", "require": "allowlist", "fingerprints": [1]}]},
            "access[0].fingerprints[0]: expected a SHA-256 fingerprint, got 1",
        ),
        ({"access": {"path": "/p/"}}, "an array of tables"),
        ({"limits": {"max_connections": 1.5}}, "limits.max_connections"),
        ({"limits": {"request_timout": 1}}, "did you mean 'request_timeout'"),
        ({"log_level": "loud"}, "log_level"),
        ({"clock_skew": -1}, "must not be negative"),
        ({"workers": 0}, "workers"),
    ],
)
def test_mistakes(raw, message):
    with pytest.raises(ConfigError, match=None) as caught:
        parse_config(raw)
    assert message in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("port = 1\nhostnames = ['a.example']\n")
    config = load_config(path, {"port": 2})
    assert config.port == 2
    assert config.hostnames == ["a.example"]


# -- every mistake at once ------------------------------------------------------------------------


def test_every_mistake_of_a_file_is_reported_at_once(tmp_path):
    path = tmp_path / "hospes.toml"
    path.write_text(
        """
prot = 1965
request_timeout = 10
hostnames = ["ok.example", "bad host"]

[[access]]
path = "private"
require = "acount"

[limits]
max_connections = 0
port = 1966
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    expected = [
        f"{path}: unknown setting 'prot' (did you mean 'port'?)",
        f"{path}: unknown setting 'request_timeout' (did you mean [limits] request_timeout?)",
        f"{path}: hostnames[1]: invalid hostname 'bad host': character space is not allowed",
        f"{path}: access[0].path: must start with '/', got 'private'",
        f"{path}: access[0].require: expected one of 'certificate', 'allowlist', 'account', "
        "got 'acount' (did you mean 'account'?)",
        f"{path}: limits.max_connections: expected a positive whole number, got 0",
        f"{path}: limits: unknown setting 'port' "
        "(did you mean the top-level 'port', above the first [table]?)",
    ]
    assert [str(problem) for problem in caught.value.problems] == expected
    assert str(caught.value) == "\n".join(expected)
    assert {problem.source for problem in caught.value.problems} == {str(path)}
    assert caught.value.problems[3].where == "access[0].path"


def test_serve_prints_every_mistake_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("port = 'x'\nworkers = 0\n[limits]\nblock_after = -1\n")
    assert main(["serve", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"hospes: {path}: port: expected a port number (0 to 65535), got 'x'",
        f"hospes: {path}: workers: expected a positive whole number, got 0",
        f"hospes: {path}: limits.block_after: must not be negative, got -1",
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"request_timeout": 10}, "unknown setting 'request_timeout' (did you mean [limits]"),
        ({"burst": 3}, "unknown setting 'burst' (did you mean [[rate_limit]] burst?)"),
        ({"require": "account"}, "(did you mean [[access]] require or [[titan]] require?)"),
        (
            {"path": "/"},
            "(did you mean [[access]] path or [[rate_limit]] path or [[cgi]] path"
            " or [[scgi]] path or [[titan]] path?)",
        ),
        ({"max_output": 1}, "(did you mean [[cgi]] max_output?)"),
        ({"addresses": []}, "(did you mean [deny] addresses?)"),
        ({"request_timout": 1}, "(did you mean [limits] request_timeout?)"),
        (
            {"limits": {"workers": 2}},
            "limits: unknown setting 'workers' (did you mean the top-level",
        ),
        (
            {"hostnames": ["a"], "hosts": {"a": {"port": 1}}},
            "hosts.a: unknown setting 'port' (did you mean the top",
        ),
        ({"deny": {"cert": "x"}}, "(did you mean the top-level 'cert', above the first [table]"),
        ({"colour": "red"}, "config: unknown setting 'colour'"),
    ],
)
def test_a_key_in_the_wrong_table_names_its_table(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert message in str(caught.value)
    assert len(caught.value.problems) == 1


def test_no_hint_when_nothing_is_close():
    with pytest.raises(ConfigError) as caught:
        parse_config({"colour": "red"})
    assert str(caught.value) == "config: unknown setting 'colour'"


def test_a_table_with_a_refused_key_is_not_checked_as_a_whole():
    # The rule's own check ("needs 'fingerprints'") would only repeat the refused key's problem.
    with pytest.raises(ConfigError) as caught:
        parse_config({"access": [{"path": "/p/", "require": "allowlist", "fingerprints": ["x"]}]})
    assert [problem.where for problem in caught.value.problems] == ["access[0].fingerprints[0]"]


def test_every_unpaired_certificate_is_named():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "hostnames": ["a.example", "b.example"],
                "hosts": {"a.example": {"cert": "a.crt"}, "b.example": {"key": "b.key"}},
            }
        )
    assert [problem.message for problem in caught.value.problems] == [
        "a.example: give both a certificate and a key, or neither",
        "b.example: give both a certificate and a key, or neither",
    ]


def test_top_level_cert_and_key_complete_the_first_host(tmp_path):
    config = parse_config(
        {
            "hostnames": ["a.example", "b.example"],
            "key": "/k",
            "hosts": {"a.example": {"cert": "c"}},
        },
        tmp_path / "hospes.toml",
    )
    assert config.hosts[0] == HostConfig("a.example", cert=tmp_path / "c", key=Path("/k"))
    assert config.hosts[1] == HostConfig("b.example")


def test_duplicate_rate_rules_and_the_default_rule():
    with pytest.raises(ConfigError) as caught:
        parse_config({"rate_limit": [{"per_key": "1/s"}, {"per_key": "2/s"}, {"per_key": "3/s"}]})
    assert [problem.where for problem in caught.value.problems] == [
        "rate_limit[1].path",
        "rate_limit[2].path",
    ]
    rules = parse_config({"rate_limit": [{"path": "/a", "per_address": "6/min"}]}).rate_limits
    assert rules == [RateRule("/a", per_address=0.1, burst=6.0), DEFAULT_RATE_RULE]


def test_file_problems_are_attributed_to_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("port = [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.source == str(path)
    assert problem.message.startswith("not valid TOML")


def test_config_error_keeps_a_plain_message():
    error = ConfigError("cannot read x: gone")
    assert str(error) == "cannot read x: gone"
    assert error.problems == (Problem("", "", "cannot read x: gone"),)


# -- each type of value ---------------------------------------------------------------------------


def convert_one(kind, value, base=Path("/base")):
    """``value`` through ``kind`` as key ``k`` of a one-key document."""
    return schema.parse(
        schema.Table([schema.Key("k", kind, "a key")], dict), {"k": value}, "t", base
    )["k"]


def problems_of(kind, value, base=Path("/base")):
    with pytest.raises(ConfigError) as caught:
        convert_one(kind, value, base)
    return [str(problem) for problem in caught.value.problems]


def test_boolean():
    assert convert_one(schema.Boolean(), True) is True
    assert problems_of(schema.Boolean(), 1) == ["t: k: expected true or false, got 1"]


def test_string():
    assert convert_one(schema.String(), "x") == "x"
    assert problems_of(schema.String(), 5) == ["t: k: expected a string, got 5"]
    assert problems_of(schema.String("a name"), ["x"]) == ["t: k: expected a name, got ['x']"]


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (schema.Integer(), True, "expected a whole number, got true"),
        (schema.Integer(), 1.0, "expected a whole number, got 1.0"),
        (schema.Integer(), "1", "expected a whole number, got '1'"),
        (schema.Integer(1, 128), 129, "expected 1 to 128, got 129"),
        (schema.Integer(1, 128), 0, "expected 1 to 128, got 0"),
        (schema.Integer(minimum=1), 0, "expected a positive whole number, got 0"),
        (schema.Integer(minimum=0), -1, "must not be negative, got -1"),
        (schema.Integer(maximum=10), 11, "expected a whole number (10 or less), got 11"),
        (schema.Integer(minimum=5), 4, "expected a whole number (5 or more), got 4"),
        (schema.Integer(0, 9, expected="a digit"), 10, "expected a digit, got 10"),
        (schema.Number(), False, "expected a number, got false"),
        (schema.Number(), "1", "expected a number, got '1'"),
        (schema.Number(), math.nan, "expected a finite number, got nan"),
        (schema.Number(), -math.inf, "expected a finite number, got -inf"),
        (schema.Number(above=0), 0, "expected a positive number, got 0"),
        (schema.Number(minimum=0), -0.5, "must not be negative, got -0.5"),
        (schema.Number(minimum=1, maximum=2), 2.5, "expected a number (1 to 2), got 2.5"),
        (schema.Number(above=1, maximum=2), 1, "expected a number (more than 1, 2 or less), got 1"),
    ],
)
def test_numbers_refused(kind, value, message):
    assert problems_of(kind, value) == [f"t: k: {message}"]


def test_numbers_accepted():
    assert convert_one(schema.Integer(1, 128), 128) == 128
    assert convert_one(schema.Integer(minimum=0), 0) == 0
    number = convert_one(schema.Number(above=0), 2)
    assert number == 2.0
    assert isinstance(number, float)


@given(value=st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=5)))
def test_integer_in_bounds_or_one_problem(value):
    kind = schema.Integer(-3, 3)
    try:
        result = convert_one(kind, value)
    except ConfigError as exc:
        (problem,) = exc.problems
        assert problem.where == "k"
        assert problem.message.startswith("expected -3 to 3, got ")
    else:
        assert type(result) is int
        assert -3 <= result <= 3
        assert result == value


@given(value=st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=5)))
def test_positive_number_or_one_problem(value):
    try:
        result = convert_one(schema.Number(above=0), value)
    except ConfigError as exc:
        (problem,) = exc.problems
        assert problem.where == "k"
        assert problem.message.startswith("expected a")
    else:
        assert isinstance(result, float)
        assert math.isfinite(result)
        assert result > 0


def test_one_of():
    levels = schema.OneOf({"debug": 10, "info": 20}, fold_case=True)
    assert convert_one(levels, "DEBUG") == 10
    assert problems_of(levels, "infoo") == [
        "t: k: expected one of 'debug', 'info', got 'infoo' (did you mean 'info'?)"
    ]
    assert problems_of(levels, 10) == ["t: k: expected one of 'debug', 'info', got 10"]
    exact = schema.OneOf({"a": 1})
    assert problems_of(exact, "A") == ["t: k: expected one of 'a', got 'A' (did you mean 'a'?)"]
    statuses = schema.OneOf({30: 30, 31: 31})
    assert convert_one(statuses, 31) == 31
    assert problems_of(statuses, True) == ["t: k: expected one of 30, 31, got true"]
    assert problems_of(statuses, [30]) == ["t: k: expected one of 30, 31, got [30]"]
    assert convert_one(schema.OneOf.enum(Requirement), "account") is Requirement.ACCOUNT


def test_file_path(tmp_path):
    kind = schema.FilePath()
    assert convert_one(kind, "a/b", base=tmp_path) == tmp_path / "a" / "b"
    assert convert_one(kind, "/etc/x", base=tmp_path) == Path("/etc/x")
    assert convert_one(kind, "~/x") == Path.home() / "x"
    assert problems_of(kind, "") == ["t: k: expected a path, got ''"]
    assert problems_of(kind, "a\0b") == ["t: k: expected a path, got 'a\\x00b'"]
    assert problems_of(kind, 3) == ["t: k: expected a path, got 3"]


def test_list_of():
    names = schema.ListOf(schema.String("a name"), "names", empty="at least one name")
    assert convert_one(names, "a") == ["a"]
    assert convert_one(names, ["a", "b"]) == ["a", "b"]
    assert problems_of(names, []) == ["t: k: at least one name"]
    assert problems_of(names, 3) == ["t: k: expected a name or a list of names, got 3"]
    assert problems_of(names, [1, "ok", {"x": 1}]) == [
        "t: k[0]: expected a name, got 1",
        "t: k[2]: expected a name, got a table",
    ]
    strict = schema.ListOf(schema.String(), "strings", single=False)
    assert convert_one(strict, []) == []
    assert problems_of(strict, "a") == ["t: k: expected a list of strings, got 'a'"]


def test_map_of():
    upper = schema.String().then(str.upper)
    kind = schema.MapOf(
        schema.String().then(_no_spaces, "a name"), upper, expected="a table of names"
    )
    assert convert_one(kind, {"a": "x", "b": "y"}) == {"a": "X", "b": "Y"}
    assert problems_of(kind, {"a b": 1, "ok": "fine", "c.d": 2}) == [
        't: k."a b": no spaces in a name',
        't: k."a b": expected a string, got 1',
        't: k."c.d": expected a string, got 2',
    ]
    assert problems_of(kind, []) == ["t: k: expected a table of names, got []"]


def _no_spaces(text):
    if " " in text:
        raise ValueError("no spaces in a name")
    return text


def test_array_of_tables_and_its_finish():
    seen = []

    def finish(items, at):
        seen.append(items)
        if len(items) > 1:
            at.at(1).report("one is enough")
        return items

    item = schema.Table([schema.Key("n", schema.Integer(), "a number", required=True)], dict)
    kind = schema.ArrayOf(item, finish)
    assert convert_one(kind, [{"n": 1}]) == [{"n": 1}]
    assert problems_of(kind, [{"n": 1}, {"n": 2}]) == ["t: k[1]: one is enough"]
    assert problems_of(kind, {"n": 1}) == ["t: k: expected an array of tables ([[k]]), got a table"]
    seen.clear()
    assert problems_of(kind, [{"n": "x"}, 3, {}]) == [
        "t: k[0].n: expected a whole number, got 'x'",
        "t: k[1]: expected a table, got 3",
        "t: k[2]: missing 'n' (a number)",
    ]
    assert seen == []  # no check across elements while one of them is refused
    as_tuple = kind.then(tuple)
    assert convert_one(as_tuple, []) == ()
    assert problems_of(as_tuple, 3) == ["t: k: expected an array of tables ([[k]]), got 3"]


def test_table_builder_problems_and_declaration():
    def build(low=0, high=0):
        if low > high:
            raise schema.Invalid("'low' is above 'high'", "and both are odd")
        return (low, high)

    kind = schema.Table(
        [
            schema.Key("low", schema.Integer(), "the low end"),
            schema.Key("high", schema.Integer(), "the high end", to="high"),
        ],
        build,
    )
    assert convert_one(kind, {"low": 1, "high": 3}) == (1, 3)
    assert problems_of(kind, {"low": 5, "high": 3}) == [
        "t: k: 'low' is above 'high'",
        "t: k: and both are odd",
    ]
    assert problems_of(kind, 1) == ["t: k: expected a table, got 1"]
    with pytest.raises(ValueError, match="distinct names"):
        schema.Table(
            [schema.Key("a", schema.Integer(), "x"), schema.Key("a", schema.String(), "y")], dict
        )


def test_then_turns_value_errors_and_overflows_into_problems():
    assert problems_of(schema.String().then(int, "digits"), "x1") == [
        "t: k: invalid literal for int() with base 10: 'x1'"
    ]
    assert problems_of(schema.String().then(int, "digits"), 1) == ["t: k: expected digits, got 1"]
    with pytest.raises(ConfigError, match="clock_skew: "):
        parse_config({"clock_skew": 1e300})


def test_locations_quote_what_is_not_a_bare_key():
    assert schema.location(("hosts", "a.example", "root")) == 'hosts."a.example".root'
    assert schema.location(("access", 0, "fingerprints", 2)) == "access[0].fingerprints[2]"
    assert schema.location(("hosts", 'a"\nb')) == 'hosts."a\\"\\nb"'
    assert schema.location(()) == ""


def test_long_values_are_shortened_in_messages():
    (problem,) = problems_of(schema.Integer(), "x" * 500)
    assert len(problem) < 100
    assert problem.endswith("...")


# -- parse_rate -----------------------------------------------------------------------------------

UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
UNITS |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}


@given(
    count=st.decimals(min_value="0.01", max_value="100000", places=2),
    unit=st.sampled_from(sorted(UNITS)),
    spaces=st.sampled_from(["", " ", "  "]),
    upper=st.booleans(),
)
def test_parse_rate_reads_every_unit(count, unit, spaces, upper):
    text = f"{spaces}{count}{spaces}/{spaces}{unit.upper() if upper else unit}{spaces}"
    assert parse_rate(text) == (float(count), float(UNITS[unit]))


@given(st.text(max_size=20))
def test_parse_rate_answers_or_says_what_it_expected(text):
    try:
        rate = parse_rate(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
    else:
        assert rate is None or (rate[0] > 0 and rate[1] in UNITS.values())


@pytest.mark.parametrize("text", ["0/min", "0.0/s", "-1/s", "1/fortnight", "1 per s", "1/", "/s"])
def test_parse_rate_refuses(text):
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


# -- independent mistakes, generated --------------------------------------------------------------

MISTAKES = {
    "port": ("x", "port"),
    "workers": (0, "workers"),
    "log_level": ("loud", "log_level"),
    "clock_skew": (-1, "clock_skew"),
    "hostnames": (["ok.example", "bad host"], "hostnames[1]"),
    "host": (5, "host"),
    "root": (5, "root"),
    "access_log": (3, "access_log"),
    "limits": ({"ipv6_prefix": 0}, "limits.ipv6_prefix"),
    "access": ([{"path": "x", "require": "certificate"}], "access[0].path"),
    "rate_limit": ([{"per_key": "x"}], "rate_limit[0].per_key"),
    "deny": ({"addresses": ["nope"]}, "deny.addresses[0]"),
    "hosts": ({"a.example": {"root": 1}}, 'hosts."a.example".root'),
    "database": ("/var/lib/hospes/hospes.sqlite3", "database"),
    "public_ports": ([1965, 0], "public_ports[1]"),
    "proxy_from": (["10.0.0.1/8"], "proxy_from[0]"),
    "colour": ("red", ""),
}


@given(st.lists(st.sampled_from(sorted(MISTAKES)), min_size=1, unique=True))
def test_every_independent_mistake_is_reported(keys):
    raw = {key: MISTAKES[key][0] for key in keys}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert [problem.where for problem in caught.value.problems] == [
        MISTAKES[key][1] for key in keys
    ]


def toml_values():
    scalars = st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(),
        st.text(max_size=12),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["path", "require", "per_key", "x", "root"]), inner),
        ),
        max_leaves=8,
    )


@given(
    st.dictionaries(
        st.sampled_from([*(key for key in MISTAKES if key != "deny"), "limits", "stray"]),
        toml_values(),
        max_size=5,
    )
)
def test_any_document_gives_a_config_or_config_errors(raw):
    try:
        config = parse_config(raw)
    except ConfigError as exc:
        assert exc.problems
        assert all(problem.source == "config" and problem.message for problem in exc.problems)
    else:
        assert config.hosts


# -- the schema itself ----------------------------------------------------------------------------


def test_every_key_has_a_one_line_description():
    entries = schema.reference(SCHEMA)
    assert len(entries) > 30
    for entry in entries:
        description = entry.key.description
        assert description.strip() == description
        assert description
        assert "\n" not in description
        assert not description.endswith(".")
        assert len(description) < 90
        assert entry.key.type.expected


def test_the_sections_of_hospes_toml():
    assert [section.label for section in schema.sections(SCHEMA)] == [
        "",
        '[hosts."NAME"]',
        '[[hosts."NAME".cgi]]',
        '[[hosts."NAME".scgi]]',
        '[[hosts."NAME".titan]]',
        '[hosts."NAME".accounts]',
        '[hosts."NAME".admin]',
        "[[access]]",
        "[limits]",
        "[[rate_limit]]",
        "[deny]",
        "[[cgi]]",
        "[[scgi]]",
        "[[titan]]",
        "[accounts]",
        "[admin]",
        "[[redirect]]",
    ]


TARGETS = {
    "": (Config, {"source"}),
    "[limits]": (Limits, set()),
    "[[access]]": (AccessRule, {"register_url"}),
    "[[rate_limit]]": (RateRule, set()),
    '[hosts."NAME"]': (HostConfig, {"name"}),
    "[[cgi]]": (CGIMount, set()),
    "[[scgi]]": (SCGIMount, set()),
    "[[titan]]": (TitanMount, set()),
    "[accounts]": (AccountsConfig, set()),
    '[hosts."NAME".accounts]': (AccountsConfig, set()),
    "[admin]": (AdminConfig, set()),
    '[hosts."NAME".admin]': (AdminConfig, set()),
    "[[redirect]]": (RedirectRule, set()),
}
BUILT_FROM = {"cert", "key"}  # Config.hosts is built from these, 'hostnames' and 'hosts'


@pytest.mark.parametrize("label", sorted(TARGETS))
def test_every_key_lands_in_a_field_and_every_field_has_a_key(label):
    target, not_from_keys = TARGETS[label]
    section = next(found for found in schema.sections(SCHEMA) if found.label == label)
    destinations = {key.destination for key in section.table.keys.values()}
    names = {item.name for item in dataclasses.fields(target)}
    assert destinations - names == (BUILT_FROM if label == "" else set())
    assert names - destinations == not_from_keys


def _default_of(target, name):
    if target is Config:  # hostnames: from the default hosts
        return getattr(Config(), name)
    for item in dataclasses.fields(target):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            return item.default_factory()
    return getattr(target(), name)  # a property, such as Config.hostnames


@pytest.mark.parametrize("label", sorted(TARGETS))
def test_the_documented_defaults_are_the_real_ones(label):
    target, _ = TARGETS[label]
    section = next(found for found in schema.sections(SCHEMA) if found.label == label)
    checked = 0
    for key in section.table.keys.values():
        if key.default is None or key.name == "state":  # state: $XDG_STATE_HOME/hospes
            continue
        raw = tomllib.loads(f"value = {key.default}")["value"]
        documented = convert_one(key.type, raw)
        assert documented == _default_of(target, key.destination), key.name
        checked += 1
    assert checked >= (0 if "hosts" in label or label.endswith(("accounts]", "admin]")) else 1)


def test_the_operations_guide_lists_every_limit():
    guide = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    section = next(found for found in schema.sections(SCHEMA) if found.label == "[limits]")
    for name in section.table.keys:
        assert f"| `{name}` |" in guide, name


def test_config_does_not_import_the_socket_layer():
    code = (
        "import hospes.config, sys; "
        "print([m for m in sys.modules if m.startswith('hospes.server')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# -- serving options, redirects, hostnames in tables and rules ------------------------------------


def test_serving_options_default_to_plain_files():
    [site] = parse_config({"root": "/srv/capsule"}).sites()
    assert (site.lang, site.charset, site.mime, site.listing) == (None, None, {}, False)
    assert (site.accounts, site.members_url) == (None, None)
    assert (site.root, site.root_key) == (Path("/srv/capsule"), "root")


def test_a_hosts_own_options_win_and_its_mime_table_goes_over():
    config = parse_config(
        {
            "hostnames": ["a.example", "b.example"],
            "lang": "en",
            "listing": True,
            "mime": {".log": "text/plain", "md": "text/x-markdown"},
            "accounts": {"mount": "/account", "members_url": "/members/"},
            "hosts": {
                "b.example": {
                    "root": "/srv/b",
                    "lang": "de",
                    "listing": False,
                    "charset": "ISO-8859-1",
                    "mime": {".LOG": "text/x-log"},
                    "accounts": {"mount": "/konto/"},
                }
            },
        }
    )
    a, b = config.sites()
    assert (a.lang, a.listing, a.charset, a.accounts) == ("en", True, None, "/account/")
    assert a.mime == {".log": "text/plain", ".md": "text/x-markdown"}
    assert (b.lang, b.listing, b.charset, b.accounts) == ("de", False, "iso-8859-1", "/konto/")
    assert b.mime == {".log": "text/x-log", ".md": "text/x-markdown"}
    assert b.members_url == "/members/"  # not set for the host: the top-level one
    assert b.root_key == 'hosts."b.example".root'
    off = parse_config(
        {
            "hostnames": ["a.example", "b.example"],
            "accounts": {"mount": "/account/"},
            "hosts": {"b.example": {"accounts": {"mount": False}}},
        }
    )
    assert [site.accounts for site in off.sites()] == ["/account/", None]


def test_the_admin_table_is_read_globally_and_per_host():
    fingerprint = "SHA256:" + "ab" * 32
    config = parse_config(
        {
            "hostnames": ["a.example", "b.example", "c.example"],
            "admin": {"mount": "/admin", "admins": ["AB:" * 31 + "AB"], "lists": ["admins"]},
            "hosts": {
                "b.example": {"admin": {"mount": "/manage/", "lists": ["crew", "admins"]}},
                "c.example": {"admin": {"mount": False}},
            },
        }
    )
    a, b, c = config.sites()
    assert (a.admin, a.admins, a.admin_lists) == ("/admin/", {fingerprint}, ("admins",))
    # A host's key wins, key by key: b keeps the top-level admins.
    assert (b.admin, b.admins, b.admin_lists) == ("/manage/", {fingerprint}, ("crew", "admins"))
    assert c.admin is None
    assert parse_config({}).admin == AdminConfig()
    assert [site.admin for site in parse_config({}).sites()] == [None]


def test_redirects_and_host_scoped_rules_are_read():
    config = parse_config(
        {
            "hostnames": ["a.example", "b.example"],
            "access": [{"path": "/p/", "require": "certificate", "host": "A.example"}],
            "redirect": [
                {"from": "/old/", "to": "/new/"},
                {"from": "/page", "to": "gemini://elsewhere.example/page?x", "status": 30},
                {"from": "/gone/", "status": 52, "match": "exact", "host": ["b.example"]},
            ],
        }
    )
    assert config.access[0].hosts == {"a.example"}
    old, page, gone = config.redirects
    assert (old.exact, old.status, old.hosts) == (False, 31, frozenset())
    assert (page.exact, page.status, page.target) == (True, 30, "gemini://elsewhere.example/page?x")
    assert (gone.exact, gone.status, gone.target, gone.hosts) == (True, 52, None, {"b.example"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lang": "en_US"}, "lang: expected a language tag such as 'en' or 'pt-BR', got 'en_US'"),
        ({"lang": "en,fr"}, "expected a language tag"),
        ({"charset": "hex"}, "charset: unknown character set 'hex'"),
        ({"charset": "utf 8"}, "expected a character set name"),
        ({"listing": "yes"}, "listing: expected true or false, got 'yes'"),
        ({"mime": {".a.b": "text/plain"}}, 'mime.".a.b": expected a file extension'),
        ({"mime": {".x": "plain"}}, 'mime.".x": expected a MIME type'),
        ({"mime": {".x": "text/plain\r\n20 x"}}, "expected a MIME type"),
        ({"accounts": {"mount": "/"}}, "'/' would hide the whole capsule"),
        ({"accounts": {"mount": True}}, "accounts.mount: expected a path such as '/account/'"),
        ({"accounts": {"mount": "account"}}, "must start with '/'"),
        ({"accounts": {"mount": "/a/../b/"}}, "write the path as requests reach it: '/b/'"),
        ({"accounts": {"members": "/m/"}}, "did you mean 'members_url'?"),
        ({"admin": {"mount": "/", "lists": ["a"]}}, "'/' would hide the whole capsule behind"),
        ({"admin": {"mount": True, "lists": ["a"]}}, "admin.mount: expected a path such as '/adm"),
        (
            {"admin": {"mount": "/admin/", "admins": ["SHA256:12"]}},
            "admin.admins[0]: not a SHA-256",
        ),
        ({"admin": {"mount": "/admin/", "lists": [7]}}, "admin.lists[0]: expected a list name"),
        ({"admin": {"mount": "/admin/"}}, "mounts the admin capsule at /admin/ for nobody"),
        ({"admin": {"mount": "/admin/", "lists": []}}, "for nobody: add admins = ["),
        ({"admin": {"lists": ["admins"]}}, "no host mounts the admin capsule: add mount ="),
        ({"admin": {"user": ["x"]}}, "admin: unknown setting 'user'"),
        (
            {"admin": {"mount": "/x/", "lists": ["a"]}, "accounts": {"mount": "/x/account/"}},
            "the admin capsule at /x/ and the account pages at /x/account/ overlap",
        ),
        ({"redirect": [{"from": "/a", "status": 52, "to": "/b"}]}, "remove 'to'"),
        ({"redirect": [{"from": "/a"}]}, "redirect[0]: missing 'to'"),
        ({"redirect": [{"from": "/a", "to": "new"}]}, "'to' is a path starting with '/' or"),
        ({"redirect": [{"from": "/a", "to": "gemini://a b/"}]}, "is not allowed"),
        ({"redirect": [{"from": "/a", "to": "gemini://x/#top"}]}, "cannot have a fragment"),
        ({"redirect": [{"from": "/a/", "to": "gemini://x/?q"}]}, "which cannot have a query"),
        ({"redirect": [{"from": "/a", "to": "/b", "status": 20}]}, "redirect[0].status"),
        ({"redirect": [{"from": "/a", "to": "/b", "match": "glob"}]}, "redirect[0].match"),
        ({"redirect": [{"from": "//a", "to": "/b"}]}, "redirect[0].from: write the path as"),
        (
            {"redirect": [{"from": "/a/", "to": "/a/b/"}]},
            "redirect[0].to: '/a/b/' is itself under '/a/': it would redirect forever",
        ),
        (
            {"redirect": [{"from": "/a", "to": "/b"}, {"from": "/a", "to": "/c"}]},
            "redirect[1].from: '/a' has a redirect already",
        ),
        (
            {"redirect": [{"from": "/a/", "to": "/b/"}, {"from": "/b/", "to": "/a/"}]},
            "redirect: these redirects loop: /a/ -> /b/ -> /a/",
        ),
        (
            {
                "redirect": [
                    {"from": "/a/", "to": "/b/"},
                    {"from": "/a", "to": "/c", "match": "prefix"},
                ]
            },
            "redirect[1].from: '/a' has a redirect already",
        ),
        (
            {"redirect": [{"from": f"/{i}", "to": f"/{i + 1}"} for i in range(6)]},
            "too many redirects in a row: /0 -> /1 -> /2 -> /3 -> /4 -> /5 -> /6 (clients",
        ),
        (
            {"hostnames": ["a.example"], "redirect": [{"from": "/a", "to": "/b", "host": "b.ex"}]},
            "redirect[0].host: 'b.ex' is not one of hostnames ['a.example']",
        ),
        (
            {"hostnames": ["gemini.example.org"], "hosts": {"gemini.exmaple.org": {}}},
            "hosts.\"gemini.exmaple.org\": 'gemini.exmaple.org' is not one of hostnames "
            "['gemini.example.org'] (did you mean 'gemini.example.org'?)",
        ),
        ({"hosts": {"example.org": {"root": "/x"}}}, "not one of hostnames ['localhost']"),
        ({"hostnames": ["example.org:1965"]}, "(write 'example.org', and the port as port = 1965)"),
    ],
)
def test_serving_mistakes(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert message in str(caught.value)


def test_the_same_redirect_path_on_other_hosts_is_no_duplicate():
    config = parse_config(
        {
            "hostnames": ["a.example", "b.example"],
            "redirect": [
                {"from": "/a", "to": "/x", "host": "a.example"},
                {"from": "/a", "to": "/y", "host": "b.example"},
                {"from": "/a/", "to": "/z/"},  # a prefix is another redirect than an exact one
            ],
        }
    )
    assert len(config.redirects) == 3


def test_config_takes_hostnames_as_the_readme_writes_it():
    config = Config(hostnames=["Example.ORG.", "bücher.example"])
    assert config.hostnames == ["example.org", "xn--bcher-kva.example"]
    assert [host.name for host in config.hosts] == config.hostnames
    with pytest.raises(ValueError, match="expected a host name"):
        Config(hostnames=["gemini://example.org/"])
    with pytest.raises(TypeError, match="not one string"):
        Config(hostnames="example.org")
    # Names equal to the hosts' keep their settings, through dataclasses.replace too.
    hosts = [HostConfig("a.example", root=Path("/a")), HostConfig("b.example")]
    config = Config(hosts=hosts, hostnames=["a.example", "b.example"])
    assert config.hosts == hosts
    assert dataclasses.replace(config, port=1966).hosts == hosts
    config.hostnames = ["c.example"]
    assert config.hosts == [HostConfig("c.example")]
    assert Config().hostnames == ["localhost"]
