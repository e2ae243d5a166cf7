"""Configuration parsing: every key, every mistake named precisely."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hospes.app.access import Requirement
from hospes.config import ConfigError, load_config, parse_config

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
        ({"port": 70000}, "not a TCP port"),
        ({"port": True}, "expected a port number"),
        ({"hostnames": []}, "at least one hostname"),
        ({"hostnames": ["bad host"]}, "invalid hostname"),
        ({"hostnames": ["a/b"]}, "invalid hostname"),
        ({"host": 5}, "a string or a list of strings"),
        ({"hosts": {"a": {"cert": "x"}}}, "give both a certificate and a key"),
        ({"hosts": {"a": {"colour": "x"}}}, "unknown setting 'colour'"),
        ({"access": [{"path": "private", "require": "certificate"}]}, "must start with '/'"),
        ({"access": [{"path": "/p/"}]}, "needs 'path' and 'require'"),
        ({"access": [{"path": "/p/", "require": "allowlist"}]}, "needs 'fingerprints' or 'lists'"),
        (
            {"access": [{"path": "/p/", "require": "account", "fingerprints": [FP]}]},
            "only apply to require = 'allowlist'",
        ),
        ({"access": [{"path": "/p/", "require": "allowlist", "fingerprints": [1]}]}, "a string"),
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
