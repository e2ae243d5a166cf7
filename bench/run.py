"""hospes against the real peers, measured in the same run: capacity per core, req/s, latency.

Every request is a new TCP connection and a TLS handshake, full or resumed
(gemload, in C).  The servers are pinned to CPU 0 and the load generator to
CPU 1; rounds alternate the order of the servers so that noise hits them
alike; medians are quoted.  For every server and scenario:

* capacity: responses per second of the *server's own CPU time* (from
  /proc, summed over the server's processes), i.e. what one core can serve.
  It is the figure to compare: it barely moves with a noisy machine or with a
  load generator that cannot keep up;
* req/s, p50 and p99 latency, as gemload saw them;
* gemload's own CPU share of its core: near 1.0, the load generator is the
  bottleneck and req/s says nothing about the server (capacity still does).

The peers: Molly Brown (Debian package ``molly-brown``, installed with
apt-get when missing and run as root), jetforce (PyPI, in a throw-away
virtualenv under ``bench/.peers/``) and the minimal pyOpenSSL responders of
this directory, with and without ``OP_NO_TICKET``.  A peer that cannot be
installed is skipped with a message.  matplotlib (for the chart) and a recent
libssl for the load generator (psycopg-binary's wheel ships OpenSSL 3.5;
Debian's OpenSSL 3.0 costs gemload ~1.3 ms of CPU per handshake) go in
another throw-away virtualenv there; none of them is a dependency of hospes.

Run by hand (not in CI), or ``make bench``::

    .venv/bin/python bench/run.py                       # all peers, 4 scenarios
    .venv/bin/python bench/run.py --rounds 3 --duration 2 --servers hospes reference-fd-noticket
    .venv/bin/python bench/run.py --keys ecdsa rsa4096 --servers hospes --scenarios full-cert
    .venv/bin/python bench/run.py --servers hospes hospes-workers2 --scenarios full-cert
    .venv/bin/python bench/run.py --baseline ../main --servers hospes reference-fd-noticket

``hospes`` is always the code of the checkout this file belongs to (its
``src/`` first on the server's PYTHONPATH, whatever hospes the virtualenv has
installed); ``--baseline DIR`` adds ``hospes-baseline``, the same server run
from another checkout, measured in the same rounds (``hospes / hospes-baseline``
in the ratios): a change is measured against what it changes.

Results go to ``bench/results/``: ``latest.json``, ``latest.md`` (the tables
printed at the end) and ``latest.png`` (the chart).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = HERE / "bin"
GEMLOAD = BIN / "gemload"
PEERS = HERE / ".peers"
RESULTS = HERE / "results"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = "# hello\n"
LOADED_CPU = 0.9
"""gemload's CPU share of its core above which it, not the server, sets the pace."""


@dataclass(frozen=True)
class Scenario:
    """How gemload connects: resumed or full handshakes, with or without a client certificate."""

    name: str
    resume: bool
    cert: bool
    groups: str = "X25519:P-256"
    """Key exchange groups gemload offers (OpenSSL list syntax)."""

    @property
    def label(self) -> str:
        handshake = "resumed" if self.resume else "full"
        label = f"{handshake} handshake, {'client cert' if self.cert else 'no client cert'}"
        return label if self.groups == "X25519:P-256" else f"{label}, {self.groups}"


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("full-cert", resume=False, cert=True),
        Scenario("resumed-cert", resume=True, cert=True),
        Scenario("full-nocert", resume=False, cert=False),
        Scenario("resumed-nocert", resume=True, cert=False),
    )
}


# -- tools and peers: throw-away virtualenvs and Debian packages ----------------------------


def venv(name: str, packages: Sequence[str]) -> Path | None:
    """The python of ``bench/.peers/NAME`` with ``packages`` installed (made once), or None."""
    directory = PEERS / name
    python = directory / "bin" / "python"
    stamp = directory / ".installed"
    wanted = " ".join(packages)
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"setting up bench/.peers/{name}: pip install {wanted}", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(directory)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *packages],
            check=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"  cannot install {wanted} ({exc}): skipped", flush=True)
        return None
    stamp.write_text(wanted)
    return python


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    found = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return Path(found.stdout.strip())


def find_newer_libssl(python: Path | None) -> Path | None:
    """A directory with a libssl/libcrypto 3.x shipped in a wheel (newer than Debian's)."""
    if python is None:
        return None
    for directory in sorted(site_packages(python).glob("*.libs")):
        if list(directory.glob("libssl-*.so.3")) and list(directory.glob("libcrypto-*.so.3")):
            return directory
    return None


def build_gemload(libdir: Path | None) -> None:
    """Compile bench/gemload.c (again when the libssl it should link against changed)."""
    BIN.mkdir(exist_ok=True)
    stamp = BIN / "gemload.openssl"
    wanted = str(libdir) if libdir else "system"
    source = HERE / "gemload.c"
    if (
        GEMLOAD.exists()
        and stamp.exists()
        and stamp.read_text() == wanted
        and GEMLOAD.stat().st_mtime >= source.stat().st_mtime
    ):
        return
    command = ["cc", "-O2", "-Wall", "-o", str(GEMLOAD), str(source)]
    if libdir:
        ssl = next(libdir.glob("libssl-*.so.3")).name
        crypto = next(libdir.glob("libcrypto-*.so.3")).name
        command += [f"-L{libdir}", f"-l:{ssl}", f"-l:{crypto}", f"-Wl,-rpath,{libdir}"]
    else:
        command += ["-lssl", "-lcrypto"]
    command.append("-lpthread")
    subprocess.run(command, check=True)
    stamp.write_text(wanted)


def molly_brown(install: bool) -> str | None:
    """The molly-brown binary, installed from Debian when missing (as root), or None."""
    found = shutil.which("molly-brown")
    if found or not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    print("installing molly-brown: apt-get install molly-brown", flush=True)
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "molly-brown"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return shutil.which("molly-brown")


# -- servers ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, its threads and its live child processes."""
    total = 0.0
    family = {pid}
    # In the order of process ids, so that parents come before their children.
    entries = sorted((int(p.name), p) for p in Path("/proc").iterdir() if p.name.isdigit())
    for number, entry in entries:
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if number in family or int(fields[1]) in family:
                family.add(number)
                total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Sample:
    """One gemload run against one server."""

    rps: float
    capacity: float
    p50_ms: float
    p99_ms: float
    load_cpu: float
    errors: int
    resumed: float
    """Share of the handshakes that were resumptions."""


@dataclass
class Server:
    """A server under test, started once and measured in every round and scenario.

    ``command`` gets the port to listen on (0 where the server reports the one
    it got with a ``listening on HOST:PORT`` line).
    """

    name: str
    command: Callable[[int], list[str]]
    banner: bool
    key: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    cpus: str = "0"
    """The CPUs the server is pinned to (taskset -c)."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables set for the server (the PYTHONPATH of a hospes checkout)."""

    def start(self, work: Path, timeout: float = 30) -> None:
        self.port = 0 if self.banner else free_port()
        self.log = work / f"{self.name}.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                ["taskset", "-c", self.cpus, *self.command(self.port)],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=work,
                start_new_session=True,
                env={**os.environ, **self.env} if self.env else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited: {self.log.read_text(errors='replace')[-2000:]}")
            if self.banner:
                found = re.search(r"listening on \S+?:(\d+)", self.log.read_text(errors="replace"))
                if found:
                    self.port = int(found.group(1))
                    return
            else:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"did not start listening within {timeout:g} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def rss_kib(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def make_certificates(directory: Path, keys: Sequence[str]) -> None:
    """A server certificate per key kind (``ecdsa``, ``rsa2048``, ``rsa4096``) and a client one."""
    sys.path.insert(0, str(ROOT / "src"))
    from hospes.selfsigned import (  # noqa: PLC0415 - after the path tweak
        generate_key,
        self_signed_certificate,
        write_certificate,
        write_private_key,
    )

    for kind in keys:
        rsa = kind.startswith("rsa")
        key = generate_key("rsa", int(kind[3:])) if rsa else generate_key("ecdsa")
        write_private_key(directory / f"server-{kind}.key", key)
        certificate = self_signed_certificate(key, "localhost", hostnames=["localhost"])
        write_certificate(directory / f"server-{kind}.crt", certificate)
    client = generate_key("ecdsa")
    write_private_key(directory / "client.key", client)
    write_certificate(directory / "client.crt", self_signed_certificate(client, "bench"))


@dataclass(frozen=True)
class Peers:
    """Where the peers' programs are (None: not installed)."""

    molly_brown: str | None
    jetforce: str | None


def find_peers(names: Sequence[str], install: bool) -> Peers:
    molly = molly_brown(install) if "molly-brown" in names else None
    jetforce = None
    if "jetforce" in names:
        python = venv("jetforce", ["jetforce"]) if install else None
        if python is None and (PEERS / "jetforce" / ".installed").exists():
            python = PEERS / "jetforce" / "bin" / "python"
        jetforce = str(python.parent / "jetforce") if python else None
    return Peers(molly, jetforce)


def server_command(
    name: str, label: str, key: str, work: Path, peers: Peers, port: int
) -> list[str]:
    """The command line that starts server ``name`` with the ``key`` certificate on ``port``."""
    cert, private = str(work / f"server-{key}.crt"), str(work / f"server-{key}.key")
    capsule = str(work / "capsule")
    if name.startswith("hospes"):
        command = [sys.executable, "-m", "hospes", "serve", "--port", str(port)]
        command += ["--cert", cert, "--key", private, "--root", capsule]
        command += ["--state", str(work / f"state-{label}")]
        command += ["--access-log", str(work / f"{label}.access.log")]
        return command + (["--workers", "2"] if name == "hospes-workers2" else [])
    if name.startswith("reference-"):
        kind, _, variant = name.removeprefix("reference-").partition("-")
        flags = ["--no-ticket"] if variant == "noticket" else []
        return [
            sys.executable,
            str(HERE / f"reference_{kind}.py"),
            str(port),
            cert,
            private,
            *flags,
        ]
    if name == "molly-brown":
        assert peers.molly_brown is not None
        return [peers.molly_brown, "-c", str(molly_config(work, label, port, cert, private))]
    assert name == "jetforce" and peers.jetforce is not None
    command = [peers.jetforce, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--hostname", "localhost", "--dir", capsule]
    return [*command, "--tls-certfile", cert, "--tls-keyfile", private]


SERVERS = (
    "hospes",
    "hospes-workers2",
    "molly-brown",
    "jetforce",
    "reference-fd",
    "reference-fd-noticket",
    "reference-bio",
    "reference-bio-noticket",
)


def define_servers(
    names: Sequence[str],
    keys: Sequence[str],
    work: Path,
    install: bool,
    baseline: Path | None = None,
) -> list[Server]:
    """The servers to measure, one per name and server key; the missing peers skipped, said why.

    The hospes servers run this checkout's ``src/``; with ``baseline`` (another
    checkout), ``hospes-baseline`` is added and runs that one's.
    """
    names = [*names, "hospes-baseline"] if baseline is not None else list(names)
    sources = {"hospes-baseline": baseline / "src" if baseline is not None else ROOT / "src"}
    peers = find_peers(names, install)
    if "molly-brown" in names and peers.molly_brown is None:
        print("skipped molly-brown: not installed (Debian: apt-get install molly-brown)")
    if "jetforce" in names and peers.jetforce is None:
        print("skipped jetforce: cannot be installed from PyPI into bench/.peers/")
    servers = []
    for key in keys:
        for name in names:
            if (name == "molly-brown" and peers.molly_brown is None) or (
                name == "jetforce" and peers.jetforce is None
            ):
                continue
            label = name if len(keys) == 1 else f"{name}[{key}]"
            command = functools.partial(server_command, name, label, key, work, peers)
            banner = name.startswith(("hospes", "reference-"))
            server = Server(label, command, banner=banner, key=key)
            if name.startswith("hospes"):
                source = sources.get(name, ROOT / "src")
                path = os.environ.get("PYTHONPATH")
                server.env["PYTHONPATH"] = f"{source}{os.pathsep}{path}" if path else str(source)
            servers.append(server)
    return servers


def molly_config(work: Path, label: str, port: int, cert: str, key: str) -> Path:
    """Molly Brown's configuration: the same capsule, an access log in a file like the others."""
    path = work / f"{label}.conf"
    path.write_text(
        f'Port = {port}\nHostname = "localhost"\nCertPath = "{cert}"\nKeyPath = "{key}"\n'
        f'DocBase = "{work / "capsule"}"\n'
        f'AccessLog = "{work / (label + ".access.log")}"\n'
        f'ErrorLog = "{work / (label + ".error.log")}"\n'
    )
    return path


# -- measuring ----------------------------------------------------------------------------


def run_load(
    server: Server, scenario: Scenario, args: argparse.Namespace, work: Path, path: str = "/"
) -> Sample:
    """One gemload run of ``scenario`` against ``server``, requesting ``path``."""
    command = ["taskset", "-c", "1", str(GEMLOAD), "-c", str(args.concurrency)]
    command += ["-d", str(args.duration), "-w", str(args.warmup), "-g", scenario.groups]
    if scenario.cert:
        command += ["-C", str(work / "client.crt"), "-K", str(work / "client.key")]
    if scenario.resume:
        command.append("-r")
    command += ["127.0.0.1", str(server.port), f"gemini://localhost:{server.port}{path}"]
    assert server.process is not None
    before = cpu_seconds(server.process.pid)
    finished = subprocess.run(command, check=False, capture_output=True, text=True)
    used = cpu_seconds(server.process.pid) - before
    lines = finished.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("RESULT"):
        raise RuntimeError(f"gemload failed: {finished.stdout}{finished.stderr}")
    result = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", lines[-1])}
    done = result["done"]
    return Sample(
        rps=result["rps"],
        capacity=done / used if used else 0.0,
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        load_cpu=result["cpu"],
        errors=int(result["err"]),
        resumed=result["resumed"] / done if done else 0.0,
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: list[Sample], b: list[Sample], attribute: str = "capacity") -> float:
    """Median of the per-round ratios a/b: two servers measured back to back share the noise."""
    pairs = [getattr(x, attribute) / getattr(y, attribute) for x, y in zip(a, b, strict=False)]
    return median([p for p in pairs if p == p])


# -- the report ---------------------------------------------------------------------------

TARGETS = [
    # (scenario, hospes vs, at least)
    ("full-cert", "molly-brown", 0.75),
    ("full-cert", "jetforce", 1.4),
    ("full-cert", "reference-fd-noticket", 0.95),
    ("full-nocert", "molly-brown", 0.85),
]


def report(servers: list[Server], scenarios: list[Scenario], meta: dict[str, object]) -> str:
    lines = [f"Run {meta['date']}: {meta['command']}", ""]
    lines.append(
        f"{meta['rounds']} rounds x {meta['duration']} s per server and scenario, "
        f"{meta['concurrency']} connections, gemload {meta['gemload']}, "
        f"load average {meta['load_before']} before, {meta['load_after']} after."
    )
    for scenario in scenarios:
        lines += ["", f"### {scenario.label}", ""]
        lines.append(
            "| server | capacity (req per CPU-s) | req/s | p50 ms | p99 ms | gemload CPU "
            "| resumed | errors |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for server in servers:
            samples = server.samples.get(scenario.name, [])
            if not samples:
                continue
            load = median([s.load_cpu for s in samples])
            flag = " (saturated)" if load > LOADED_CPU else ""
            lines.append(
                f"| {server.name} | {median([s.capacity for s in samples]):,.0f} "
                f"| {median([s.rps for s in samples]):,.0f} "
                f"| {median([s.p50_ms for s in samples]):.1f} "
                f"| {median([s.p99_ms for s in samples]):.1f} | {load:.2f}{flag} "
                f"| {median([s.resumed for s in samples]):.0%} "
                f"| {sum(s.errors for s in samples)} |"
            )
    by_name = {server.name: server for server in servers}
    hospes_names = [name for name in by_name if name.startswith("hospes")]
    lines += ["", "### Ratios by capacity (median of per-round ratios)", ""]
    lines.append("| scenario | ratio | value |")
    lines.append("|---|---|---|")
    for scenario in scenarios:
        for mine in hospes_names:
            for other in by_name.values():
                if other.name.startswith("hospes"):
                    continue
                value = ratio(
                    by_name[mine].samples.get(scenario.name, []),
                    other.samples.get(scenario.name, []),
                )
                if value == value:
                    lines.append(f"| {scenario.name} | {mine} / {other.name} | {value:.2f} |")
    for workers in servers:
        one = by_name.get(workers.name.replace("hospes-workers2", "hospes"))
        if not workers.name.startswith("hospes-workers2") or one is None:
            continue
        for scenario in scenarios:
            mine, theirs = workers.samples, one.samples
            value = ratio(mine.get(scenario.name, []), theirs.get(scenario.name, []))
            if value == value:
                lines.append(f"| {scenario.name} | {workers.name} / {one.name} | {value:.2f} |")
    for baseline in servers:
        one = by_name.get(baseline.name.replace("hospes-baseline", "hospes"))
        if not baseline.name.startswith("hospes-baseline") or one is None:
            continue
        for scenario in scenarios:
            mine, theirs = one.samples, baseline.samples
            value = ratio(mine.get(scenario.name, []), theirs.get(scenario.name, []))
            if value == value:
                lines.append(f"| {scenario.name} | {one.name} / {baseline.name} | {value:.2f} |")
    for server in servers:
        for cert in ("cert", "nocert"):
            value = ratio(
                server.samples.get(f"resumed-{cert}", []), server.samples.get(f"full-{cert}", [])
            )
            if value == value:
                lines.append(f"| {cert} | {server.name}: resumed / full | {value:.2f} |")
    checks = []
    for scenario, other, floor in TARGETS:
        if "hospes" in by_name and other in by_name:
            mine, theirs = by_name["hospes"].samples, by_name[other].samples
            value = ratio(mine.get(scenario, []), theirs.get(scenario, []))
            if value == value:
                verdict = "met" if value >= floor else "NOT met"
                checks.append(f"- {scenario}: hospes / {other} {value:.2f} (>= {floor}): {verdict}")
    if "hospes" in by_name:
        value = ratio(
            by_name["hospes"].samples.get("resumed-cert", []),
            by_name["hospes"].samples.get("full-cert", []),
        )
        if value == value:
            verdict = "met" if value >= 1.35 else "NOT met"
            checks.append(f"- hospes resumed / full, client cert {value:.2f} (>= 1.35): {verdict}")
    if checks:
        lines += ["", "### Targets of issue 14", "", *checks]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each run")
    parser.add_argument("--concurrency", type=int, default=64, help="connections in flight")
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["hospes", "molly-brown", "jetforce", "reference-fd-noticket", "reference-fd"],
        choices=SERVERS,
    )
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument(
        "--keys",
        nargs="+",
        default=["ecdsa"],
        choices=["ecdsa", "rsa2048", "rsa4096"],
        help="server key kinds (each server runs once per kind)",
    )
    parser.add_argument(
        "--groups",
        nargs="+",
        default=["X25519:P-256"],
        help="key exchange groups gemload offers, OpenSSL list syntax (X25519MLKEM768: the "
        "post-quantum one); several lists: every scenario runs with each, in the same rounds",
    )
    parser.add_argument(
        "--server-cpus",
        default="0",
        help="CPUs the servers are pinned to (gemload runs on CPU 1); 0,1 lets the two "
        "processes of hospes-workers2 each have a core, gemload sharing one of them",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="use only the peers already installed"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another hospes checkout, measured as hospes-baseline in the same rounds",
    )
    args = parser.parse_args()
    if args.baseline is not None and not (args.baseline / "src" / "hospes").is_dir():
        raise SystemExit(f"--baseline {args.baseline}: no src/hospes there")
    if shutil.which("taskset") is None or shutil.which("cc") is None:
        raise SystemExit("needs taskset (util-linux) and a C compiler with the OpenSSL headers")
    install = not args.no_install
    tools = venv("tools", ["matplotlib", "psycopg-binary"]) if install else None
    if tools is None and (PEERS / "tools" / ".installed").exists():
        tools = PEERS / "tools" / "bin" / "python"
    build_gemload(find_newer_libssl(tools))
    scenarios = [
        dataclasses.replace(
            SCENARIOS[name],
            name=name if len(args.groups) == 1 else f"{name}@{groups}",
            groups=groups,
        )
        for groups in args.groups
        for name in args.scenarios
    ]
    work = Path(tempfile.mkdtemp(prefix="hospes-bench-"))
    make_certificates(work, args.keys)
    (work / "capsule").mkdir()
    (work / "capsule" / "index.gmi").write_text(PAGE)
    servers = define_servers(args.servers, args.keys, work, install, args.baseline)
    for server in servers:
        server.cpus = args.server_cpus
    meta: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "rounds": args.rounds,
        "duration": args.duration,
        "concurrency": args.concurrency,
        "server_cpus": args.server_cpus,
        "groups": " ".join(args.groups),
        "load_before": f"{os.getloadavg()[0]:.1f}",
    }
    started: list[Server] = []
    try:
        for server in servers:
            try:
                server.start(work)
            except RuntimeError as exc:
                print(f"skipped {server.name}: {exc}")
                server.stop()
                continue
            started.append(server)
        servers = started
        probe = run_probe(servers, work, args)
        meta["gemload"] = probe
        print(f"gemload: {probe}; load average {meta['load_before']}")
        print(
            f"{len(servers)} servers x {len(scenarios)} scenarios x {args.rounds} rounds x "
            f"{args.warmup + args.duration:g} s",
            flush=True,
        )
        for round_number in range(1, args.rounds + 1):
            order = servers if round_number % 2 else list(reversed(servers))
            for scenario in scenarios:
                for server in order:
                    sample = run_load(server, scenario, args, work)
                    server.samples.setdefault(scenario.name, []).append(sample)
                    print(
                        f"  round {round_number} {scenario.name:15} {server.name:24} "
                        f"capacity {sample.capacity:6.0f}  rps {sample.rps:6.0f}  "
                        f"p50 {sample.p50_ms:6.1f} p99 {sample.p99_ms:6.1f} ms  "
                        f"gemload cpu {sample.load_cpu:.2f}  resumed {sample.resumed:.0%}  "
                        f"err {sample.errors}",
                        flush=True,
                    )
        for server in servers:
            meta.setdefault("rss_kib", {})[server.name] = server.rss_kib()  # type: ignore[index]
    finally:
        for server in started:
            server.stop()
    meta["load_after"] = f"{os.getloadavg()[0]:.1f}"
    text = report(servers, scenarios, meta)
    print()
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "scenarios": [asdict(s) | {"label": s.label} for s in scenarios],
        "servers": {
            s.name: {name: [asdict(x) for x in v] for name, v in s.samples.items()} for s in servers
        },
    }
    (args.output / "latest.json").write_text(json.dumps(data, indent=1))
    (args.output / "latest.md").write_text(text)
    if tools is not None:
        chart = args.output / "latest.png"
        subprocess.run(
            [str(tools), str(HERE / "chart.py"), str(args.output / "latest.json"), str(chart)],
            check=False,
        )
        print(f"chart: {chart}")
    else:
        print("no chart: matplotlib could not be installed into bench/.peers/tools")
    print(f"results: {args.output / 'latest.json'}, {args.output / 'latest.md'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def run_probe(servers: list[Server], work: Path, args: argparse.Namespace) -> str:
    """Check every server answers (a few requests with -v); returns gemload's OpenSSL version."""
    version = "?"
    for server in list(servers):
        command = [str(GEMLOAD), "-n", "4", "-c", "1", "-v"]
        command += ["-C", str(work / "client.crt"), "-K", str(work / "client.key")]
        command += ["127.0.0.1", str(server.port), f"gemini://localhost:{server.port}/"]
        finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
        found = re.search(r"gemload \((OpenSSL [^)]*)\)", finished.stdout)
        version = found.group(1) if found else version
        if finished.returncode != 0 or "err=0" not in finished.stdout:
            print(f"skipped {server.name}: it does not answer: {finished.stderr[-500:]}")
            server.stop()
            servers.remove(server)
    return version


if __name__ == "__main__":
    sys.exit(main())
