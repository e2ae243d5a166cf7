"""Cost of Store.recognise (and active_ban) on the SQLite store, in microseconds per call.

    .venv/bin/python bench/recognise.py [--accounts N] [--calls N]

Measures, on the event loop as the server calls them: a registered certificate
(the common case), an unknown certificate (anonymous visitors with a
certificate), active_ban for a member and is_allowed, all answered from the
store's read cache once asked; then a certificate never seen before on every
call (a cache miss: the hand-over to the store's thread and back), and the
query alone on the synchronous core (SQLiteDatabase, no thread, no loop).  The
store holds N accounts so the indexes are not trivially small.  last_seen
writes are throttled to once an hour, so a steady state of reads is what is
timed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from hospes.gemini.identity import ClientIdentity
from hospes.store.sqlite import SQLiteStore
from hospes.store.sqlite_db import SQLiteDatabase

NOW = dt.datetime.now(dt.UTC)


def identity(name: str) -> ClientIdentity:
    return ClientIdentity(
        fingerprint="SHA256:" + secrets.token_hex(32),
        key_fingerprint="SHA256:" + secrets.token_hex(32),
        common_name=name,
        subject=f"CN={name}",
        issuer=f"CN={name}",
        serial=1,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
        key_type="ECDSA P-256",
        key_bits=256,
        self_signed=True,
        defect=None,
    )


async def timed(label: str, calls: int, function) -> None:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            await function()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    print(f"{label:<40} {statistics.median(rounds):7.1f} µs/call (median of 5 x {calls})")


async def main(accounts: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "hospes.sqlite3"
        store = SQLiteStore(path)
        try:
            members = [identity(f"m{index}") for index in range(accounts)]
            for index, member in enumerate(members):
                await store.register(f"m{index}", member, NOW)
            member, stranger = members[accounts // 2], identity("stranger")
            account = await store.recognise(member, NOW)
            assert account is not None
            await timed(
                "recognise (registered certificate)", calls, lambda: store.recognise(member, NOW)
            )
            await timed(
                "recognise (unknown certificate)", calls, lambda: store.recognise(stranger, NOW)
            )
            await timed(
                "active_ban (member, no ban)", calls, lambda: store.active_ban(member, account, NOW)
            )
            await timed("is_allowed (one list)", calls, lambda: store.is_allowed(["demo"], member))

            strangers = iter([identity("new") for _ in range(calls * 5)])
            await timed(
                "recognise (cache miss: new certificate)",
                calls,
                lambda: store.recognise(next(strangers), NOW),
            )

            database = SQLiteDatabase(path)
            try:
                start = time.perf_counter()
                for _ in range(calls):
                    database.recognise(member, NOW)
                alone = (time.perf_counter() - start) / calls * 1e6
            finally:
                database.close()
            print(f"{'recognise query alone (SQLiteDatabase)':<40} {alone:7.1f} µs/call")

            async def gathered() -> None:
                await asyncio.gather(*(store.recognise(member, NOW) for _ in range(100)))

            start = time.perf_counter()
            for _ in range(calls // 100):
                await gathered()
            per_call = (time.perf_counter() - start) / (calls // 100 * 100) * 1e6
            print(f"{'recognise, 100 concurrent':<40} {per_call:7.1f} µs/call (throughput)")
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=5_000)
    arguments = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(arguments.accounts, arguments.calls))
    else:
        uvloop.run(main(arguments.accounts, arguments.calls))
