"""Instructions per request of a server, counted by callgrind: a figure that noise cannot move.

On a busy machine, CPU time per request swings by tens of percent; the
number of instructions a server executes for a fixed number of requests
does not.  This starts a server (as bench/run.py would) under
``valgrind --tool=callgrind``, warms it up, zeroes the counters, sends
``--requests`` requests with gemload, dumps the counters and prints the
instructions per request, with the share of OpenSSL (libcrypto + libssl), of
the Python interpreter and of the rest.  Compare variants round by round::

    .venv/bin/python bench/instructions.py --servers hospes reference-fd-noticket --rounds 3
    .venv/bin/python bench/instructions.py --scenario resumed-cert --servers hospes
    .venv/bin/python bench/instructions.py --baseline ../main --servers hospes   # before/after

Needs valgrind (Debian: ``apt-get install valgrind``) and what bench/run.py needs.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import (
    GEMLOAD,
    PAGE,
    PEERS,
    SCENARIOS,
    SERVERS,
    Scenario,
    Server,
    build_gemload,
    define_servers,
    find_newer_libssl,
    make_certificates,
)


def gemload(
    server: Server, scenario: Scenario, work: Path, requests: int, groups: str = "X25519:P-256"
) -> str:
    command = [str(GEMLOAD), "-n", str(requests), "-c", "4", "-T", "120000", "-g", groups]
    if scenario.cert:
        command += ["-C", str(work / "client.crt"), "-K", str(work / "client.key")]
    if scenario.resume:
        command.append("-r")
    command += ["127.0.0.1", str(server.port), f"gemini://localhost:{server.port}/"]
    result = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = result.strip().splitlines()[-1]
    if " err=0 " not in line:
        raise SystemExit(f"errors against {server.name}: {result}")
    return line


def totals(path: Path) -> int:
    text = path.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def by_object(dump: Path, requests: int) -> str:
    """Instructions per request by shared object (OpenSSL, Python, libc, ...), from a dump."""
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {
        "_rust.abi3.so": "OpenSSL",  # cryptography's wheel links OpenSSL statically
        "libpython3": "Python",
        "python3": "Python",
        "libc.so": "libc",
        "loop.cpython": "uvloop",
        "_cffi_backend": "cffi",
    }
    sums: dict[str, int] = {}
    for line in annotated.splitlines():
        found = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+.*\[(.*)\]$", line)
        if not found or float(found.group(2)) > 90:  # the roots of the call graph
            continue
        shared = Path(found.group(3)).name
        label = next((v for k, v in names.items() if shared.startswith(k)), "other")
        sums[label] = sums.get(label, 0) + int(found.group(1).replace(",", ""))
    ordered = sorted(sums.items(), key=lambda item: -item[1])
    return ", ".join(f"{label} {value / requests / 1e3:.0f} k" for label, value in ordered)


def measure(
    server: Server, scenario: Scenario, work: Path, requests: int, groups: str = "X25519:P-256"
) -> tuple[float, Path]:
    """Instructions per request of ``server`` (started under callgrind), and the dump."""
    assert server.process is not None
    gemload(server, scenario, work, 50, groups)  # warm-up: caches, first-time imports
    pid = server.process.pid  # taskset and valgrind exec: the same process
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    gemload(server, scenario, work, requests, groups)
    dump = work / f"dump-{server.name}-{time.monotonic_ns()}"
    subprocess.run(
        ["callgrind_control", "-d", dump.name, str(pid)], check=True, capture_output=True
    )
    files = sorted(work.glob(f"callgrind.out.{pid}*{dump.name}*")) or sorted(
        work.glob(f"callgrind.out.{pid}.*")
    )
    newest = max(files, key=lambda p: p.stat().st_mtime)
    return totals(newest) / requests, newest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", default=["hospes"], choices=SERVERS)
    parser.add_argument("--scenario", default="full-cert", choices=list(SCENARIOS))
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--key", default="ecdsa", choices=["ecdsa", "rsa2048", "rsa4096"], help="server key"
    )
    parser.add_argument(
        "--groups", default="X25519:P-256", help="key exchange groups gemload offers"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another hospes checkout, measured as hospes-baseline (see bench/run.py)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    tools = PEERS / "tools" / "bin" / "python"
    build_gemload(find_newer_libssl(tools if tools.exists() else None))
    scenario = SCENARIOS[args.scenario]
    work = Path(tempfile.mkdtemp(prefix="hospes-instructions-"))
    make_certificates(work, [args.key])
    (work / "capsule").mkdir()
    (work / "capsule" / "index.gmi").write_text(PAGE)
    servers = define_servers(args.servers, [args.key], work, install=False, baseline=args.baseline)
    results: dict[str, list[float]] = {server.name: [] for server in servers}
    try:
        for server in servers:
            plain = server.command
            server.command = lambda port, plain=plain: [  # type: ignore[misc]
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=callgrind.out.%p",
                *plain(port),
            ]
            server.start(work, timeout=600)
        for round_number in range(1, args.rounds + 1):
            order = servers if round_number % 2 else list(reversed(servers))
            for server in order:
                per_request, dump = measure(server, scenario, work, args.requests, args.groups)
                results[server.name].append(per_request)
                shares = by_object(dump, args.requests)
                print(
                    f"round {round_number} {server.name:24} {per_request / 1e6:6.3f} M "
                    f"instructions per request: {shares}",
                    flush=True,
                )
    finally:
        for server in servers:
            server.stop()
    print(
        f"\n{scenario.label}, {args.key} server key, groups {args.groups}, "
        f"{args.requests} requests, 4 in flight:"
    )
    for name, values in results.items():
        print(f"  {name:24} {statistics.median(values) / 1e6:8.3f} M instructions per request")
    print(f"callgrind files in {work} (callgrind_annotate FILE | head -60)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
