"""The pieces behind the hostile-load defences: address sets and groups, rate rules, escalating
blocks, and the configuration that sets them (errors name the file and the key).
"""

from __future__ import annotations

import ipaddress
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.config import DEFAULT_RATE_RULE, ConfigError, load_config, parse_config, parse_rate
from hospes.policy.addresses import (
    AddressError,
    AddressSet,
    format_address,
    format_group,
    group,
    parse_address,
    parse_network,
    read_address_file,
)
from hospes.policy.clock import ManualClock
from hospes.policy.limits import DEFAULT_TRUSTED, Limits
from hospes.policy.ratelimit import Blocks, RateLimits, RateRule

# -- addresses ----------------------------------------------------------------------------------


def test_ipv4_and_mapped_ipv6_are_the_same_number():
    assert parse_address("192.0.2.7") == parse_address("::ffff:192.0.2.7")
    assert format_address(parse_address("::ffff:192.0.2.7")) == "192.0.2.7"
    assert format_address(parse_address("2001:db8::1")) == "2001:db8::1"
    assert parse_address("fe80::1%eth0") == parse_address("fe80::1")


@pytest.mark.parametrize("text", ["", "example.org", "1.2.3", "1.2.3.4.5", "::g", "1.2.3.4/8"])
def test_parse_address_refuses_anything_else(text):
    with pytest.raises(AddressError):
        parse_address(text)


def test_ipv6_groups_by_prefix_ipv4_by_address():
    one, other = parse_address("2001:db8:1:2::1"), parse_address("2001:db8:1:2:ffff::9")
    assert group(one) == group(other)
    assert group(one) != group(parse_address("2001:db8:1:3::1"))
    assert group(one, 128) != group(other, 128)
    v4 = parse_address("192.0.2.7")
    assert group(v4) == v4 != group(parse_address("192.0.2.8"))
    assert format_group(group(one), 64) == "2001:db8:1:2::/64"
    assert format_group(v4, 64) == "192.0.2.7"


@pytest.mark.parametrize(
    ("text", "message"),
    [("192.0.2.1/24", "host bits set"), ("10.0.0.0/33", "not an IP"), ("nonsense", "not an IP")],
)
def test_parse_network_errors(text, message):
    with pytest.raises(AddressError, match=message):
        parse_network(text)


def test_address_set_merges_and_matches_both_families():
    entries = ["192.0.2.0/25", "192.0.2.128/25", "198.51.100.7", "2001:db8::/32"]
    addresses = AddressSet(entries)
    assert len(addresses) == 3  # the two /25 halves merged
    for inside in ("192.0.2.0", "192.0.2.255", "198.51.100.7", "2001:db8:ffff::1"):
        assert parse_address(inside) in addresses
    for outside in ("192.0.3.0", "198.51.100.8", "2001:db9::", "::ffff:c000:0201:1"):
        assert parse_address(outside) not in addresses
    assert not AddressSet()
    assert parse_address("127.0.0.1") in AddressSet(DEFAULT_TRUSTED)
    assert parse_address("::1") in AddressSet(DEFAULT_TRUSTED)


networks_v4 = st.builds(
    lambda address, prefix: str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)),
    st.ip_addresses(v=4),
    st.integers(8, 32),
)
networks_v6 = st.builds(
    lambda address, prefix: str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)),
    st.one_of(st.ip_addresses(v=6), st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}")),
    st.integers(0, 128),
)


@given(
    st.lists(st.one_of(networks_v4, networks_v6), max_size=12),
    st.lists(st.ip_addresses(), min_size=1, max_size=20),
)
def test_address_set_agrees_with_ipaddress(entries, probes):
    addresses = AddressSet(entries)
    networks = [as_ipv4(ipaddress.ip_network(entry)) for entry in entries]
    for probe in probes:
        plain = probe.ipv4_mapped or probe if probe.version == 6 else probe
        expected = any(plain in network for network in networks if network.version == plain.version)
        assert (parse_address(str(probe)) in addresses) == expected, (entries, probe)


MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def as_ipv4(network):
    """The oracle's reading of a network written inside ::ffff:0:0/96: IPv4 addresses."""
    if network.version == 6 and network.subnet_of(MAPPED):
        start = int(network.network_address) & 0xFFFFFFFF
        return ipaddress.ip_network((start, network.prefixlen - 96))
    return network


def test_ipv6_networks_do_not_swallow_ipv4_unless_written_as_mapped():
    assert parse_address("192.0.2.7") not in AddressSet(["::/0"])
    assert parse_address("2001:db8::1") in AddressSet(["::/0"])
    assert parse_address("192.0.2.7") in AddressSet(["::ffff:192.0.2.0/120"])
    assert parse_address("192.0.3.7") not in AddressSet(["::ffff:192.0.2.0/120"])


def test_read_address_file(tmp_path):
    path = tmp_path / "deny.txt"
    path.write_text("# scanners\n192.0.2.0/24  # a range\n\n2001:db8::1\n")
    assert read_address_file(path) == ["192.0.2.0/24", "2001:db8::1"]
    path.write_text("192.0.2.0/24\n10.0.0.1/8\n")
    with pytest.raises(AddressError, match=r"deny.txt:2: '10.0.0.1/8'"):
        read_address_file(path)


# -- rate rules -----------------------------------------------------------------------------------


def test_longest_prefix_wins_and_both_keys_must_grant():
    clock = ManualClock()
    limits = RateLimits(
        [RateRule("/", per_address=1, burst=5), RateRule("/search", per_address=1, per_key=1)],
        clock=clock,
    )
    assert limits.take("/search?q", "a", None) == 0
    assert limits.take("/search", "a", None) == pytest.approx(1.0)
    assert limits.take("/other", "a", None) == 0  # its own bucket under "/"
    assert limits.take("/search", "b", "key") == 0
    assert limits.take("/search", "c", "key") == pytest.approx(1.0)  # same key, new address
    assert limits.take("/search", None, "key") == 0  # trusted address: no limits at all
    clock.advance(1)
    assert limits.take("/search", "a", None) == 0


def test_paths_without_a_rule_are_not_limited():
    limits = RateLimits([RateRule("/search", per_address=0.001, burst=1)])
    assert [limits.take("/", "a", None) for _ in range(5)] == [0] * 5


def test_inherit_keeps_buckets_of_unchanged_rules_only():
    clock = ManualClock()
    kept, changed = RateRule("/", per_address=1, burst=1), RateRule("/x", per_address=1, burst=1)
    old = RateLimits([kept, changed], clock=clock)
    old.take("/", "a", None)
    old.take("/x", "a", None)
    new = RateLimits([kept, RateRule("/x", per_address=2, burst=1)], clock=clock)
    new.inherit(old)
    assert new.take("/", "a", None) > 0  # still empty
    assert new.take("/x", "a", None) == 0  # a new rule starts afresh


def test_limiter_memory_is_bounded():
    limits = RateLimits([RateRule("/", per_address=1, burst=1)])
    for address in range(70000):
        limits.take("/", address, None)
    bucket = limits._rules[0].addresses
    assert bucket is not None
    assert len(bucket) == 65536


# -- escalating blocks ------------------------------------------------------------------------


def test_blocks_escalate_double_and_cap():
    clock = ManualClock()
    blocks = Blocks(after=3, first=60, longest=200, clock=clock)
    periods = []
    for _ in range(4):
        for _ in range(4):  # one 44, then three retries before its wait is over
            period = blocks.refused("a", 10)
            clock.advance(1)
        periods.append(period)
        assert blocks.blocked("a") > 0
        assert blocks.blocked("b") == 0
        clock.advance(period)
        assert blocks.blocked("a") == 0
    assert periods == [60, 120, 200, 200]


def test_honouring_44_never_earns_a_block():
    clock = ManualClock()
    blocks = Blocks(after=2, first=60, clock=clock)
    for _ in range(50):
        assert blocks.refused("a", 5) == 0
        clock.advance(5)  # came back exactly when told
    assert blocks.blocked("a") == 0


def test_blocks_are_forgotten_after_a_quiet_period_and_can_be_disabled():
    clock = ManualClock()
    blocks = Blocks(after=1, first=10, longest=100, clock=clock)
    blocks.refused("a", 5)
    assert blocks.refused("a", 5) == 10
    clock.advance(10)
    blocks.refused("a", 5)
    assert blocks.refused("a", 5) == 20
    clock.advance(20 + 101)  # unblocked for longer than `longest`
    blocks.refused("a", 5)
    assert blocks.refused("a", 5) == 10
    off = Blocks(after=0, clock=clock)
    assert all(off.refused("a", 5) == 0 for _ in range(100))


def test_block_records_are_bounded():
    blocks = Blocks(max_keys=100)
    for key in range(1000):
        blocks.refused(key, 1)
    assert len(blocks) == 100


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10/min", (10, 60)), ("1/s", (1, 1)), ("2.5 / hour", (2.5, 3600)), ("OFF", None)],
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


def test_rate_limit_deny_and_limits_sections(tmp_path):
    (tmp_path / "deny.txt").write_text("203.0.113.0/24\n")
    path = tmp_path / "hospes.toml"
    path.write_text(
        textwrap.dedent(
            """
            [limits]
            trusted = []
            ipv6_prefix = 56
            block_after = 0
            block_first = 30

            [[rate_limit]]
            path = "/search"
            per_address = "10/min"
            per_key = "30/hour"

            [[rate_limit]]
            path = "/"
            per_address = "off"
            per_key = "600/min"
            burst = 100

            [deny]
            addresses = ["192.0.2.0/24", "2001:db8::/32"]
            files = ["deny.txt"]
            """
        )
    )
    config = load_config(path)
    assert config.limits.trusted == ()
    assert (config.limits.ipv6_prefix, config.limits.block_after) == (56, 0)
    search, root = config.rate_limits
    assert search == RateRule("/search", per_address=10 / 60, per_key=30 / 3600, burst=10)
    assert root == RateRule("/", per_address=None, per_key=10.0, burst=100)
    assert config.deny == ("192.0.2.0/24", "2001:db8::/32", "203.0.113.0/24")


def test_defaults():
    config = parse_config({})
    assert config.rate_limits == [DEFAULT_RATE_RULE]
    assert config.limits.trusted == DEFAULT_TRUSTED
    assert config.deny == ()
    only_search = parse_config({"rate_limit": [{"path": "/s", "per_key": "1/s"}]})
    assert only_search.rate_limits[-1] == DEFAULT_RATE_RULE


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rate_limit": {"per_address": "1/s"}}, "rate_limit: expected an array of tables"),
        ({"rate_limit": [{"per_address": "ten/min"}]}, "rate_limit[0].per_address: expected"),
        ({"rate_limit": [{"per_address": "10/fortnight"}]}, "rate_limit[0].per_address"),
        ({"rate_limit": [{"per_address": "0/min"}]}, "must be above zero"),
        ({"rate_limit": [{"per_address": 10}]}, "rate_limit[0].per_address: expected a rate"),
        ({"rate_limit": [{"path": "/a"}]}, "needs 'per_address' or 'per_key'"),
        ({"rate_limit": [{"path": "a", "per_key": "1/s"}]}, "must start with '/'"),
        ({"rate_limit": [{"per_key": "1/s", "burst": 0}]}, "rate_limit[0].burst"),
        ({"rate_limit": [{"per_key": "1/s", "brust": 2}]}, "did you mean 'burst'"),
        (
            {"rate_limit": [{"per_key": "1/s"}, {"path": "/", "per_key": "2/s"}]},
            "rate_limit[1].path: '/' has a rule already",
        ),
        ({"deny": {"addresses": ["192.0.2.1/24"]}}, "deny.addresses[0]: '192.0.2.1/24'"),
        ({"deny": {"adresses": []}}, "did you mean 'addresses'"),
        ({"deny": {"files": ["/nonexistent/deny.txt"]}}, "deny.files[0]: cannot read"),
        ({"limits": {"trusted": ["localhost"]}}, "limits.trusted[0]"),
        ({"limits": {"ipv6_prefix": 129}}, "limits.ipv6_prefix: expected 1 to 128"),
        ({"limits": {"block_after": -1}}, "limits.block_after: must not be negative"),
        ({"limits": {"block_first": 0}}, "limits.block_first"),
    ],
)
def test_mistakes_name_the_key(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert message in str(caught.value)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "hospes.toml"
    path.write_text('[[rate_limit]]\nper_address = "fast"\n')
    with pytest.raises(ConfigError, match=rf"{path}: rate_limit\[0\].per_address"):
        load_config(path)


def test_limits_default_is_what_the_docs_say():
    limits = Limits()
    assert (limits.handshake_timeout, limits.request_timeout, limits.response_timeout) == (
        5,
        10,
        30,
    )
    assert (limits.max_connections, limits.max_connections_per_address) == (1024, 32)
    assert (limits.block_after, limits.block_first, limits.block_longest) == (10, 60, 86400)
