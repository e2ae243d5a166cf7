"""The cost of publishing a worker's counters to shared memory, and of adding them up.

    .venv/bin/python bench/counters.py

Prints microseconds per publication (one worker, once a second in a server) and
per total (what the supervisor and the admin pages do), with counters as busy
as a day of a public capsule's, first without refused requests, then with a full
record of them (the admin overview's last refusals); and what remembering one
refusal costs the request path.
"""

from __future__ import annotations

import timeit
from collections import Counter

from hospes.server.counters import CounterBoard
from hospes.server.refusals import KEPT, RecentRefusals
from hospes.server.stats import Stats

ROUNDS = 20_000


def main() -> None:
    stats = Stats(
        accepted=123_456,
        responses=Counter({20: 100_000, 31: 12, 44: 300, 51: 2000, 59: 40, 61: 5}),
        refused=Counter({"blocked": 340, "max_connections_per_address": 146}),
        dropped=Counter(
            {"tls_error": 3325, "handshake_timeout": 144, "request_timeout": 96, "reset": 95}
        ),
        blocks=1,
    )
    recent = RecentRefusals()
    meta = "your certificate is not on this page's allow-list; ask the capsule's admin to add it"

    def refuse() -> None:
        recent.add("2001:db8::7", 0x20010DB8 << 96, 64, "SHA256:" + "ab" * 32, 61, meta)

    per_refusal = timeit.timeit(refuse, number=ROUNDS) / ROUNDS
    print(f"remembering a refusal: {per_refusal * 1e9:.0f} ns (request path, 6x and 44 only)")
    refusals = recent.records()
    assert len(refusals) == KEPT
    for label, kept in (("no refusals", []), (f"{KEPT} refusals", refusals)):
        for workers in (1, 2, 4):
            board = CounterBoard(workers)
            for slot in range(workers):
                board.publish(slot, stats, 7, kept)

            def publish(board: CounterBoard = board, kept: list = kept) -> None:  # type: ignore[type-arg]
                board.publish(0, stats, 7, kept)

            def read(board: CounterBoard = board) -> None:
                board.overview()

            took = timeit.timeit(publish, number=ROUNDS) / ROUNDS
            total = timeit.timeit(read, number=ROUNDS // 4) / (ROUNDS // 4)
            print(
                f"{label}, {workers} worker(s): publish {took * 1e6:.1f} µs, "
                f"totals and refusals {total * 1e6:.1f} µs"
            )


if __name__ == "__main__":
    main()
