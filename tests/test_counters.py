"""Counters across processes: slots of shared memory, totals, retired workers."""

from __future__ import annotations

import os
import struct
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.server.counters import SLOT_SIZE, CounterBoard
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
