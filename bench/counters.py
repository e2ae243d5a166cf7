"""The cost of publishing a worker's counters to shared memory, and of adding them up.

    .venv/bin/python bench/counters.py

Prints microseconds per publication (one worker, once a second in a server) and
per total (what the supervisor and the admin pages do), with counters as busy
as a day of a public capsule's.
"""

from __future__ import annotations

import timeit
from collections import Counter

from hospes.server.counters import CounterBoard
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
    for workers in (1, 2, 4):
        board = CounterBoard(workers)
        for slot in range(workers):
            board.publish(slot, stats, 7)
        publish = timeit.timeit(lambda: board.publish(0, stats, 7), number=ROUNDS) / ROUNDS  # noqa: B023
        total = timeit.timeit(board.totals, number=ROUNDS) / ROUNDS
        print(f"{workers} worker(s): publish {publish * 1e6:.1f} µs, totals {total * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
