"""Requests per second of one node with the PostgreSQL store versus SQLite, in the same run.

Two hospes nodes serve the demo capsule, one on SQLite (in its state
directory), one on PostgreSQL (a schema of its own in ``--database``, dropped
afterwards).  The load generator (gemload, as in ``run.py``) requests a page
that needs the store, with a client certificate registered beforehand:

* ``members``: the demo's ``/members/`` (an ``account`` rule): the account and
  any ban come from the read cache, so the database is not asked while
  nothing changes (what most requests of a capsule with accounts look like);
* ``account``: ``/account/``, which also lists the account's certificates,
  a query the cache does not hold: one database round trip per request
  (the worst case of a page that reads the store on every request).

First it measures how long a change made through one store (an admin
command, another node) takes to reach another node's cached answers: the
time from the end of ``ban`` until ``active_ban`` on the other store sees it,
``--changes`` times.

The node is pinned to CPU 0 and the load generator to CPU 1; rounds alternate
between the two stores and the ratios are medians of per-round ratios.  For
PostgreSQL it also reports the CPU time the database's server processes spent
per request (the node's pool and watch connections), which says how many
nodes one PostgreSQL core can serve.

    .venv/bin/python bench/store.py --rounds 6 --duration 4 --page members
    .venv/bin/python bench/store.py --rounds 6 --duration 4 --page account
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from run import (
    PEERS,
    SCENARIOS,
    TICKS,
    Server,
    build_gemload,
    find_newer_libssl,
    make_certificates,
    run_load,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from hospes.gemini.identity import identify  # noqa: E402
from hospes.selfsigned import load_certificate  # noqa: E402


def register_client(store: object, certificate: Path) -> None:
    """Give the load generator's certificate an account, so the members' page answers 20."""
    import datetime as dt  # noqa: PLC0415

    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    identity = identify(load_certificate(certificate).public_bytes(Encoding.DER))

    async def main() -> None:
        await store.register("bench", identity, dt.datetime.now(dt.UTC))  # type: ignore[attr-defined]
        await store.close()  # type: ignore[attr-defined]

    asyncio.run(main())


def propagation(url: str, changes: int) -> list[float]:
    """Seconds from a committed ban on one store to another store's cached answer seeing it."""
    import datetime as dt  # noqa: PLC0415
    import time  # noqa: PLC0415

    from hospes.store import BanKind  # noqa: PLC0415
    from hospes.store.postgres import PostgresStore  # noqa: PLC0415

    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_store import identity  # noqa: PLC0415

    async def main() -> list[float]:
        node, admin = PostgresStore(url), PostgresStore(url)
        delays = []
        try:
            await node.accounts()
            await asyncio.wait_for(node.watch.connected.wait(), 10)
            await admin.accounts()
            for _ in range(changes):
                target = identity()
                now = dt.datetime.now(dt.UTC)
                assert await node.active_ban(target, None, now) is None  # now cached
                await admin.ban(BanKind.KEY, target.key_fingerprint, "bench", now)
                start = time.perf_counter()
                while await node.active_ban(target, None, now) is None:
                    await asyncio.sleep(0)
                delays.append(time.perf_counter() - start)
                await asyncio.sleep(0.05)
        finally:
            await node.close()
            await admin.close()
        return delays

    return asyncio.run(main())


def database_cpu(psycopg: object, admin_url: str, schema: str) -> float:
    """CPU seconds used so far by the database processes serving the benchmark's node."""
    with psycopg.connect(admin_url, autocommit=True) as connection:  # type: ignore[attr-defined]
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'hospes' "
            "AND datname = current_database()"
        ).fetchall()
    total = 0.0
    for (pid,) in rows:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # another machine's database, or a process that ended
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--page", choices=["members", "account"], default="members")
    parser.add_argument("--changes", type=int, default=20, help="changes timed for propagation")
    parser.add_argument(
        "--database",
        default=os.environ.get("HOSPES_TEST_DATABASE", "postgresql://postgres@127.0.0.1/test"),
        help="a PostgreSQL database where a schema may be created (and is dropped after)",
    )
    args = parser.parse_args()
    args.warmup = 1.0
    args.groups = "X25519:P-256"
    if shutil.which("taskset") is None or shutil.which("cc") is None:
        raise SystemExit("needs taskset (util-linux) and a C compiler")
    import psycopg  # noqa: PLC0415 - pip install 'hospes[postgres]'

    from hospes.store.postgres import PostgresStore  # noqa: PLC0415
    from hospes.store.sqlite import SQLiteStore  # noqa: PLC0415

    tools = PEERS / "tools" / "bin" / "python"  # made by run.py: a recent libssl for gemload
    libssl = find_newer_libssl(tools if tools.exists() else None)
    build_gemload(libssl)
    openssl = str(libssl or "system")
    work = Path(tempfile.mkdtemp(prefix="hospes-bench-store-"))
    make_certificates(work, ["ecdsa"])
    schema = f"hospes_bench_{secrets.token_hex(4)}"
    separator = "&" if "?" in args.database else "?"
    url = f"{args.database}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(args.database, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    python = sys.executable
    servers: list[Server] = []
    try:
        register_client(SQLiteStore(work / "sqlite" / "hospes.sqlite3"), work / "client.crt")
        register_client(PostgresStore(url), work / "client.crt")
        if args.changes:
            delays = sorted(propagation(url, args.changes))
            print(
                f"a change reaches another node's cache in {delays[len(delays) // 2] * 1e3:.1f} ms "
                f"(median of {len(delays)}; slowest {delays[-1] * 1e3:.1f} ms)",
                flush=True,
            )
        for name, store in (("sqlite", []), ("postgresql", ["--database", url])):
            command = [python, "-m", "hospes", "serve", "--port", "0", "--state", str(work / name)]
            command += ["--cert", str(work / "server-ecdsa.crt")]
            command += ["--key", str(work / "server-ecdsa.key")]
            command += ["--access-log", str(work / f"{name}.log"), *store]
            servers.append(Server(name, lambda _port, c=command: c, banner=True, key="ecdsa"))
        path = "/members/" if args.page == "members" else "/account/"
        print(f"gemload linked against OpenSSL from: {openssl}")
        print(
            f"page {path}: {args.rounds} rounds x {args.duration:g} s, "
            f"{args.concurrency} connections, node on CPU 0, load on CPU 1"
        )
        database_per_request: list[float] = []
        for server in servers:
            server.start(work)
        for round_number in range(1, args.rounds + 1):
            order = servers if round_number % 2 else list(reversed(servers))
            for server in order:
                before = database_cpu(psycopg, args.database, schema)
                sample = run_load(server, SCENARIOS["full-cert"], args, work, path)
                server.samples.setdefault(path, []).append(sample)
                if server.name == "postgresql":
                    spent = database_cpu(psycopg, args.database, schema) - before
                    requests = sample.rps * args.duration
                    database_per_request.append(spent / requests if requests else 0.0)
                print(
                    f"  round {round_number} {server.name:11} rps {sample.rps:.0f} "
                    f"req/cpu-s {sample.capacity:.0f} err {sample.errors}",
                    flush=True,
                )
    finally:
        for server in servers:
            server.stop()
        with psycopg.connect(args.database, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'store':11} {'rps':>8} {'req/cpu-s':>10} {'errors':>7}")
    for server in servers:
        samples = server.samples[path]
        print(
            f"{server.name:11} {statistics.median(s.rps for s in samples):8.0f} "
            f"{statistics.median(s.capacity for s in samples):10.0f} "
            f"{sum(s.errors for s in samples):7d}"
        )
    sqlite, postgresql = (server.samples[path] for server in servers)
    rps = statistics.median(a.rps / b.rps for a, b in zip(postgresql, sqlite, strict=True))
    per_cpu = statistics.median(
        a.capacity / b.capacity for a, b in zip(postgresql, sqlite, strict=True)
    )
    print(f"postgresql / sqlite (median of per-round ratios): rps x{rps:.2f}, ", end="")
    print(f"req/cpu-s x{per_cpu:.2f}")
    database = statistics.median(database_per_request)
    node_rps = statistics.median(s.rps for s in postgresql)
    print(f"database CPU per request: {database * 1e6:.0f} us (median)", end="")
    if database * node_rps > 0.001:
        print(f"; one database core serves ~{1 / (database * node_rps):.0f} nodes at this rate")
    else:
        print(": the database is not asked on this page while nothing changes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
