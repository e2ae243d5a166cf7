"""Throughput of hospes against reference responders measured in the same run.

Every request is a new TCP connection and a full TLS handshake (gemload, in
C).  The servers are pinned to CPU 0 and the load generator to CPU 1; rounds
alternate between the servers so that noise hits them alike; medians are
quoted.  Two figures per server:

* rps: responses per second seen by the load generator;
* req/cpu-s: responses per second of the *server's own CPU time* (from
  /proc/PID/stat), i.e. what one core can serve; it is much less sensitive to
  a noisy machine or to a load generator that cannot keep up.

Run by hand (not in CI)::

    .venv/bin/python bench/run.py --rounds 5 --duration 5
    .venv/bin/python bench/run.py --scenario nocert
    .venv/bin/python bench/run.py --scenario identity   # /me page: identity + store

Needs a C compiler and OpenSSL headers (``apt-get install libssl-dev``).  If a
newer libssl than the system's is available in the virtualenv (for example
the OpenSSL 3.5 shipped inside psycopg-binary's wheel), gemload is linked
against it: with OpenSSL 3.0 the load generator spends ~1.3 ms of CPU per
handshake and saturates its core before a fast server does.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = HERE / "bin"
GEMLOAD = BIN / "gemload"
TICKS = os.sysconf("SC_CLK_TCK")


def find_newer_libssl() -> Path | None:
    """A directory with a libssl/libcrypto 3.x shipped in site-packages (newer than Debian's)."""
    site = Path(sysconfig.get_paths()["purelib"])
    for directory in sorted(site.glob("*.libs")):
        if list(directory.glob("libssl-*.so.3")) and list(directory.glob("libcrypto-*.so.3")):
            return directory
    return None


def build_gemload() -> str:
    """Compile bench/gemload.c once; returns a description of the OpenSSL it uses."""
    BIN.mkdir(exist_ok=True)
    libdir = find_newer_libssl()
    stamp = BIN / "gemload.openssl"
    wanted = str(libdir) if libdir else "system"
    if GEMLOAD.exists() and stamp.exists() and stamp.read_text() == wanted:
        return wanted
    command = ["cc", "-O2", "-Wall", "-o", str(GEMLOAD), str(HERE / "gemload.c")]
    if libdir:
        ssl = next(libdir.glob("libssl-*.so.3")).name
        crypto = next(libdir.glob("libcrypto-*.so.3")).name
        command += [f"-L{libdir}", f"-l:{ssl}", f"-l:{crypto}", f"-Wl,-rpath,{libdir}"]
    else:
        command += ["-lssl", "-lcrypto"]
    command.append("-lpthread")
    subprocess.run(command, check=True)
    stamp.write_text(wanted)
    return wanted


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Server:
    """A server started on port 0; it prints ``listening on HOST:PORT`` on stderr once it does."""

    name: str
    command: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    rps: list[float] = field(default_factory=list)
    per_cpu: list[float] = field(default_factory=list)
    load_cpu: list[float] = field(default_factory=list)
    errors: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", *self.command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        seen = []
        for line in iter(self.process.stderr.readline, b""):
            seen.append(line.decode())
            found = re.search(r"listening on \S+?:(\d+)", seen[-1])
            if found:
                self.port = int(found.group(1))
                return
        raise SystemExit(f"{self.name} exited: {''.join(seen)}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def run_load(server: Server, url: str, args: argparse.Namespace, certs: Path) -> str:
    command = [
        "taskset",
        "-c",
        "1",
        str(GEMLOAD),
        "-c",
        str(args.concurrency),
        "-d",
        str(args.duration),
    ]
    command += ["-w", "1"]
    if args.scenario != "nocert":
        command += ["-C", str(certs / "client.crt"), "-K", str(certs / "client.key")]
    command += ["127.0.0.1", str(server.port), url]
    assert server.process is not None
    before = cpu_seconds(server.process.pid)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(server.process.pid) - before
    result = dict(re.findall(r"(\w+)=([\d.]+)", output.strip().splitlines()[-1]))
    server.rps.append(float(result["rps"]))
    server.per_cpu.append(int(result["done"]) / used if used else 0.0)
    server.load_cpu.append(float(result["cpu"]))
    server.errors += int(result["err"])
    return output.strip().splitlines()[-1]


def make_certificates(directory: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    from hospes.selfsigned import (  # noqa: PLC0415 - after the path tweak
        generate_key,
        self_signed_certificate,
        write_certificate,
        write_private_key,
    )

    for name, host in (("server", "localhost"), ("client", "bench")):
        key = generate_key("ecdsa")
        write_private_key(directory / f"{name}.key", key)
        hostnames = [host] if name == "server" else []
        write_certificate(
            directory / f"{name}.crt", self_signed_certificate(key, host, hostnames=hostnames)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--scenario",
        choices=["static", "nocert", "identity"],
        default="static",
        help="static: a small gemtext file with a client certificate; nocert: the same "
        "without one; identity: the demo's /me page (identity, store, templating)",
    )
    parser.add_argument("--only", nargs="*", help="servers to run (default: all)")
    args = parser.parse_args()
    if shutil.which("taskset") is None or shutil.which("cc") is None:
        raise SystemExit("needs taskset (util-linux) and a C compiler")
    openssl = build_gemload()
    work = Path(tempfile.mkdtemp(prefix="hospes-bench-"))
    make_certificates(work)
    capsule = work / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# hello\n")
    python = sys.executable
    cert, key = str(work / "server.crt"), str(work / "server.key")
    servers = []
    for name in ("reference-bio", "reference-fd", "hospes"):
        if name == "hospes":
            command = [python, "-m", "hospes", "serve", "--port", "0"]
            command += ["--cert", cert, "--key", key, "--state", str(work / "state")]
            command += ["--access-log", str(work / "access.log")]
            if args.scenario != "identity":
                command += ["--root", str(capsule)]
        else:
            command = [python, str(HERE / f"{name.replace('-', '_')}.py"), "0", cert, key]
        servers.append(Server(name, command))
    if args.only:
        servers = [server for server in servers if server.name in args.only]
    path = "/me" if args.scenario == "identity" else "/"
    print(f"gemload linked against OpenSSL from: {openssl}")
    print(
        f"scenario {args.scenario}: {args.rounds} rounds x {args.duration:g} s, "
        f"{args.concurrency} connections, URL path {path}"
    )
    try:
        for server in servers:
            server.start()
        for round_number in range(1, args.rounds + 1):
            order = servers if round_number % 2 else list(reversed(servers))
            for server in order:
                line = run_load(server, f"gemini://localhost:{server.port}{path}", args, work)
                print(f"  round {round_number} {server.name:14} {line}", flush=True)
    finally:
        for server in servers:
            server.stop()
    print()
    print(f"{'server':14} {'rps':>8} {'req/cpu-s':>10} {'gemload cpu':>12} {'errors':>7}")
    for server in servers:
        print(
            f"{server.name:14} {statistics.median(server.rps):8.0f} "
            f"{statistics.median(server.per_cpu):10.0f} "
            f"{statistics.median(server.load_cpu):12.2f} {server.errors:7d}"
        )
    by_name = {server.name: server for server in servers}
    if "hospes" in by_name:
        hospes = by_name["hospes"]
        for reference in ("reference-bio", "reference-fd"):
            if reference not in by_name:
                continue
            other = by_name[reference]
            # Ratios of the same round, measured back to back, share the machine's noise.
            rps = statistics.median(a / b for a, b in zip(hospes.rps, other.rps, strict=True))
            per_cpu = statistics.median(
                a / b for a, b in zip(hospes.per_cpu, other.per_cpu, strict=True)
            )
            print(
                f"hospes / {reference} (median of per-round ratios): "
                f"rps x{rps:.2f}, req/cpu-s x{per_cpu:.2f}"
            )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
