"""Counters across processes: slots of shared memory, totals, retired workers."""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import identity_of, raw_request
from hospes.config import Config
from hospes.policy.addresses import group, parse_address
from hospes.policy.limits import Limits
from hospes.policy.ratelimit import RateRule
from hospes.server.counters import SLOT_SIZE, CounterBoard, CounterPublisher
from hospes.server.refusals import RecentRefusals, RefusedRequest
from hospes.server.stats import Stats


def stats(accepted: int, **responses: int) -> Stats:
    return Stats(
        accepted=accepted,
        responses=Counter({int(status[1:]): count for status, count in responses.items()}),
        dropped=Counter({"tls_error": 1}),
    )


def test_workers_forked_after_the_board_publish_to_it():
    board = CounterBoard(2)
    pids = []
    for slot in range(2):
        pid = os.fork()
        if pid == 0:
            board.publish(slot, stats(10 + slot, s20=5 + slot, s51=1), connections=3)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    first = board.read(0)
    assert first is not None
    assert (first.pid, first.connections) == (pids[0], 3)
    total, connections = board.totals()
    assert total.accepted == 21
    assert total.responses == Counter({20: 11, 51: 2})
    assert total.dropped == Counter({"tls_error": 2})
    assert connections == 6


def test_a_retired_worker_still_counts_and_its_slot_starts_over():
    board = CounterBoard(2)
    board.publish(0, stats(4, s20=4), connections=2)
    board.publish(1, stats(1, s20=1))
    board.retire(0)
    assert board.read(0) is None
    total, connections = board.totals()
    assert (total.accepted, total.responses[20], connections) == (5, 5, 0)
    board.publish(0, stats(2, s20=2))  # the replacement
    board.retire(0)
    board.publish(0, stats(1, s44=1))
    total, _ = board.totals()
    assert total.accepted == 8
    assert total.responses == Counter({20: 7, 44: 1})


def test_a_slot_being_written_is_not_read():
    board = CounterBoard(1)
    board.publish(0, stats(1, s20=1))
    memory = board._memory
    (sequence,) = struct.unpack_from("<I", memory, 0)
    struct.pack_into("<I", memory, 0, sequence + 1)  # odd: a writer is in the middle
    assert board.read(0) is None
    struct.pack_into("<I", memory, 0, sequence + 2)
    assert board.read(0).stats.accepted == 1


def test_slots_are_checked():
    board = CounterBoard(2)
    with pytest.raises(IndexError):
        board.publish(2, Stats())  # the retired slot is the supervisor's
    with pytest.raises(ValueError, match="at least one"):
        CounterBoard(0)
    assert board.read(2) is None


@given(
    st.builds(
        Stats,
        accepted=st.integers(0, 2**40),
        refused=st.dictionaries(
            st.sampled_from(["denied", "blocked", "evicted"]), st.integers(0, 9)
        ).map(Counter),
        dropped=st.dictionaries(st.text(max_size=20), st.integers(1, 2**40)).map(Counter),
        responses=st.dictionaries(st.integers(10, 69), st.integers(1, 2**40)).map(Counter),
        blocks=st.integers(0, 1000),
        health_checks=st.integers(0, 2**40),
    )
)
def test_stats_survive_the_trip_through_a_slot(value):
    board = CounterBoard(1)
    board.publish(0, value)
    read = board.read(0)
    assert read is not None
    expected = Stats.from_dict(value.as_dict())
    assert read.stats == expected
    assert +read.stats.responses == +value.responses
    assert read.stats.accepted == value.accepted
    assert (read.stats.blocks, read.stats.health_checks) == (value.blocks, value.health_checks)


def _every_counter_set(start: int) -> Stats:
    """Stats with every field non-zero (a field added later is set too, or this fails)."""
    value = Stats()
    for number, item in enumerate(dataclasses.fields(Stats), start):
        current = getattr(value, item.name)
        if isinstance(current, Counter):
            current[f"key_{number}" if item.name != "responses" else 20] = number
        else:
            assert isinstance(current, int), item.name
            setattr(value, item.name, number)
    return value


def test_every_counter_is_carried_and_totalled():
    """No counter is lost on the way from a worker to the totals (health checks once were)."""
    first, second = _every_counter_set(1), _every_counter_set(100)
    for value in (first, second):
        assert Stats.from_dict(json.loads(json.dumps(value.as_dict()))) == value
    total = Stats.total([first, second])
    for item in dataclasses.fields(Stats):
        mine, theirs, summed = (getattr(s, item.name) for s in (first, second, total))
        if isinstance(mine, Counter):
            assert summed == mine + theirs, item.name
        else:
            assert summed == mine + theirs > 0, item.name
    board = CounterBoard(2)
    board.publish(0, first)
    board.publish(1, second)
    board.retire(1)
    assert board.totals()[0] == total
    assert f"health checks {first.health_checks + second.health_checks}" in total.summary()


def test_a_slot_holds_every_status_and_reason():
    every = Stats(
        accepted=2**40,
        responses=Counter({status: 2**40 for status in range(10, 70)}),
        dropped=Counter({f"reason_{index}": 2**40 for index in range(40)}),
        refused=Counter({f"reason_{index}": 2**40 for index in range(40)}),
    )
    assert len(str(every.as_dict())) < SLOT_SIZE - 64
    board = CounterBoard(1)
    board.publish(0, every)
    assert board.read(0).stats == every


def test_waiting_for_the_workers_publications():
    board = CounterBoard(2)
    assert board.wait_for_workers(0.0, timeout=0)  # no worker has published: nothing to wait for
    board.publish(0, stats(1, s20=1))
    since = board.read(0).published + 1
    started = time.monotonic()
    assert not board.wait_for_workers(since, timeout=0.05)
    assert time.monotonic() - started >= 0.05
    pid = os.fork()
    if pid == 0:  # a worker answering the request a moment later
        time.sleep(0.1)
        board.publish(0, stats(2, s20=2))
        os._exit(0)
    try:
        assert board.wait_for_workers(time.time(), timeout=10)
    finally:
        os.waitpid(pid, 0)
    assert board.totals()[0].accepted == 2


# -- the last refused requests (the admin capsule's overview) ---------------------------------


def refused(number: int, reason: str = "banned: spam") -> RefusedRequest:
    return RefusedRequest(1000.0 + number, f"192.0.2.{number % 250}", None, 61, reason)


def test_refusals_are_remembered_boundedly_and_written_out_when_read():
    recent = RecentRefusals(kept=3)
    assert recent.records() == [] and recent.newest() is None
    ipv6 = group(parse_address("2001:db8::7"))
    recent.add("192.0.2.7", group(parse_address("192.0.2.7")), 64, None, 60, "certificate")
    recent.add("2001:db8::7", ipv6, 64, "SHA256:" + "ab" * 32, 44, "30")
    recent.add("10.0.0.5", None, 64, None, 62, "x" * 500)  # a trusted address: no group
    recent.add("192.0.2.8", group(parse_address("192.0.2.8")), 64, None, 61, "banned: spam")
    first, second, third = recent.records()  # the oldest went
    assert (first.group, first.status, first.fingerprint) == (
        "2001:db8::/64",
        44,
        "SHA256:" + "ab" * 32,
    )
    assert (second.group, second.reason) == ("10.0.0.5", "x" * 160 + "…")
    assert (third.group, third.status, third.reason) == ("192.0.2.8", 61, "banned: spam")
    assert first.time <= second.time <= third.time <= time.time()


def test_refusals_travel_in_the_slots_and_the_newest_of_every_worker_come_first():
    board = CounterBoard(2)
    board.publish(0, stats(1, s61=2), 0, [refused(1), refused(3)])
    board.publish(1, stats(1, s61=2), 0, [refused(2), refused(4)])
    _, _, recent = board.overview()
    assert [item.time for item in recent] == [1004.0, 1003.0, 1002.0, 1001.0]
    assert board.overview(2)[2] == [refused(4), refused(3)]
    # A stopped worker's refusals stay, beside its replacement's.
    board.retire(0)
    board.publish(0, stats(1), 0, [refused(5)])
    assert [item.time for item in board.overview()[2]] == [1005.0, 1004.0, 1003.0, 1002.0, 1001.0]
    assert board.totals()[0].responses[61] == 4


def test_refusals_that_do_not_fit_a_slot_leave_out_the_oldest():
    board = CounterBoard(1)
    wide = "\u202e\x01" * 80  # each character a six-byte JSON escape
    many = [refused(number, wide) for number in range(200)]
    board.publish(0, stats(1), 0, many)
    kept = board.read(0).refusals
    assert 10 < len(kept) < 200
    assert list(kept) == many[-len(kept) :]
    assert kept[0].reason == wide


def test_a_publisher_publishes_the_servers_refusals():
    board = CounterBoard(1)
    recent = RecentRefusals()
    publisher = CounterPublisher(board, 0, stats(1), lambda: 3, refusals=recent)
    publisher.publish()
    assert board.read(0).refusals == ()
    recent.add("192.0.2.1", None, 64, None, 60, "certificate")
    publisher.publish()
    publisher.publish()  # nothing new: the same records, written again
    [item] = board.read(0).refusals
    assert (item.group, item.status) == ("192.0.2.1", 60)
    assert board.read(0).connections == 3


def test_a_server_remembers_its_refusals_not_its_answers(serve, certs):
    rules = [RateRule("/", per_address=1 / 60, burst=2)]
    server = serve(config=Config(rate_limits=rules, limits=Limits(trusted=())))
    alice = certs.make("alice")
    url = server.url("/me")
    assert raw_request(server.port, url).status == 60
    assert raw_request(server.port, server.url("/"), cert=alice).status == 20
    assert raw_request(server.port, url, cert=alice).status == 44
    sixty, slow = server.server.refusals.records()
    assert (sixty.status, sixty.group, sixty.fingerprint) == (60, "127.0.0.1", None)
    assert sixty.reason.startswith("this page needs a client certificate")
    assert (slow.status, slow.fingerprint) == (44, identity_of(alice).fingerprint)
    assert slow.reason.isdecimal()
