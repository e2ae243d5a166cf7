"""Admission at accept, as bookkeeping: deny lists, trust, blocks, caps, eviction, counts.

No sockets here: ``Admission`` decides on address strings and counts stand-in
connections (``Idle``), so each rule is checked on its own.  The same rules
over real connections are in ``test_hostile_server.py``.
"""

from __future__ import annotations

import pytest

from hospes.policy.addresses import AddressSet, group, parse_address
from hospes.policy.clock import ManualClock
from hospes.policy.ratelimit import Blocks
from hospes.server.admission import (
    BLOCKED,
    DENIED,
    EVICT_AGE,
    FULL,
    GROUP_FULL,
    AddressKey,
    Admission,
    AdmissionRules,
    Refusal,
)


def rules(**changes) -> AdmissionRules:
    values = {
        "deny": AddressSet(),
        "trusted": AddressSet(["127.0.0.0/8"]),
        "max_connections": 100,
        "max_per_group": 3,
        "ipv6_prefix": 64,
    }
    values.update(changes)
    return AdmissionRules(**values)


class Idle:
    """A connection that never sends its request line; abort closes it as a real one does."""

    def __init__(self, admission: Admission, clock: ManualClock, key: AddressKey | None) -> None:
        self.admission = admission
        self.accepted = clock()
        self.key = key
        self.aborted: str | None = None

    def abort(self, reason: str) -> None:
        self.aborted = reason
        self.admission.closed(self, self.key)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(clock: ManualClock, **changes) -> Admission:
    return Admission(rules(**changes), Blocks(after=1, first=60, clock=clock), clock)


def open_from(admission: Admission, clock: ManualClock, address: str, count: int) -> list[Idle]:
    """``count`` connections from ``address``, admitted and opened."""
    opened = []
    for _ in range(count):
        key = admission.admit(address, len(opened))
        assert not isinstance(key, Refusal), key
        connection = Idle(admission, clock, key)
        admission.opened(connection, key)
        opened.append(connection)
    return opened


def test_keys_are_address_groups_and_none_for_trusted(clock):
    admission = make(clock)
    assert admission.admit("192.0.2.7", 0) == parse_address("192.0.2.7")
    assert admission.admit("::ffff:192.0.2.7", 0) == parse_address("192.0.2.7")
    assert admission.admit("2001:db8::1", 0) == admission.admit("2001:db8::ffff:1", 0)
    assert admission.admit("2001:db8::1", 0) == group(parse_address("2001:db8::"), 64)
    assert admission.admit("127.0.0.1", 0) is None
    # What cannot be parsed is its own key (never trusted, never denied).
    assert admission.admit("not an address", 0) == "not an address"


def test_deny_list_comes_first_even_for_trusted_addresses(clock):
    admission = make(clock, deny=AddressSet(["127.0.0.2", "192.0.2.0/24"]))
    assert admission.admit("127.0.0.2", 0) is DENIED
    assert admission.admit("192.0.2.200", 0) is DENIED
    assert admission.admit("127.0.0.3", 0) is None
    assert admission.admit("198.51.100.1", 0) == parse_address("198.51.100.1")
    assert DENIED.reason == "denied"


def test_per_group_cap_counts_open_connections_and_frees_them_on_close(clock):
    admission = make(clock, max_per_group=3)
    first, second, third = open_from(admission, clock, "2001:db8::1", 3)
    key = first.key
    assert admission.connections_of(key) == 3
    # Another address of the same /64 is the same group.
    assert admission.admit("2001:db8::2", 3) is GROUP_FULL
    assert GROUP_FULL.reason == "max_connections_per_address"
    assert admission.admit("2001:db8:0:1::2", 3) == group(parse_address("2001:db8:0:1::"), 64)
    admission.closed(second, key)
    assert admission.connections_of(key) == 2
    assert admission.admit("2001:db8::2", 2) == key
    admission.closed(first, key)
    admission.closed(third, key)
    assert admission.connections_of(key) == 0
    assert admission.waiting == 0


def test_trusted_addresses_are_not_capped_per_group(clock):
    admission = make(clock, max_per_group=1)
    opened = open_from(admission, clock, "127.0.0.1", 5)
    assert all(connection.key is None for connection in opened)
    assert admission.waiting == 5


def test_blocked_groups_are_refused_until_the_block_ends(clock):
    admission = make(clock)
    key = admission.admit("192.0.2.7", 0)
    assert key is not None
    assert not isinstance(key, Refusal)
    admission.blocks.refused(key, 5)
    assert admission.blocks.refused(key, 5) == 60  # the second strike in a row: blocked
    assert admission.admit("192.0.2.7", 0) is BLOCKED
    assert admission.admit("192.0.2.8", 0) == parse_address("192.0.2.8")
    clock.advance(59.9)
    assert admission.admit("192.0.2.7", 0) is BLOCKED
    clock.advance(0.2)
    assert admission.admit("192.0.2.7", 0) == key


def test_at_the_global_cap_only_an_old_waiting_connection_is_evicted(clock):
    admission = make(clock, max_connections=3, max_per_group=10)
    oldest, middle, newest = open_from(admission, clock, "192.0.2.1", 3)
    assert admission.admit("198.51.100.1", 3) is FULL
    assert FULL.reason == "max_connections"
    clock.advance(EVICT_AGE - 0.01)
    assert admission.admit("198.51.100.1", 3) is FULL
    assert oldest.aborted is None
    clock.advance(0.02)
    assert admission.admit("198.51.100.1", 3) == parse_address("198.51.100.1")
    assert oldest.aborted == "evicted"
    assert middle.aborted is newest.aborted is None
    assert admission.waiting == 2
    assert admission.connections_of(oldest.key) == 2


def test_a_connection_that_sent_its_request_is_never_evicted(clock):
    admission = make(clock, max_connections=2, max_per_group=10)
    answering, idle = open_from(admission, clock, "192.0.2.1", 2)
    admission.requested(answering)
    clock.advance(60)
    assert admission.admit("198.51.100.1", 2) == parse_address("198.51.100.1")
    assert (answering.aborted, idle.aborted) == (None, "evicted")
    # Only the answering one is left, and it does not wait: at the cap, nobody makes way.
    assert admission.waiting == 0
    assert admission.admit("198.51.100.2", 2) is FULL


def test_new_rules_apply_to_the_next_connection_and_counts_are_kept(clock):
    admission = make(clock, max_per_group=2)
    opened = open_from(admission, clock, "192.0.2.1", 2)
    assert admission.admit("192.0.2.1", 2) is GROUP_FULL
    admission.rules = rules(max_per_group=3, deny=AddressSet(["198.51.100.0/24"]))
    assert admission.admit("192.0.2.1", 2) == opened[0].key
    assert admission.admit("198.51.100.9", 2) is DENIED
    assert admission.connections_of(opened[0].key) == 2
