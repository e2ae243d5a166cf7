"""A full disk, for real: Titan uploads, the SQLite identity store and the access log on a tmpfs.

Each test mounts a small tmpfs of its own (``mount -t tmpfs -o size=…``), fills
it with a filler file until the kernel answers ``ENOSPC``, and talks to a
running server over TLS: no error is injected, the writes fail as they would
on a full disk.  Mounting needs root; without it (or without ``mount``) the
tests are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import io
import logging
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from account_flow import answer, prompt_path
from helpers import CertFiles, RawResponse, RunningServer, raw_request, serve_process, start_server
from hospes.app.access import STORE_UNAVAILABLE
from hospes.cli import main
from hospes.client.titan import TitanClient
from hospes.config import Config, HostConfig
from hospes.gateways import TitanMount
from hospes.server.accesslog import LINE

Mount = Callable[[str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``tmpfs("256k")``: a new tmpfs of that size, unmounted after the test, even on failure."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip() or result.returncode}")
        mounted.append(point)
        return point

    try:
        yield mount
    finally:
        for point in reversed(mounted):
            # Lazily: a server thread that has not let go of a file yet must not keep it mounted.
            subprocess.run(["umount", "-l", str(point)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file in ``directory`` until the disk is full; the filler."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        block = b"\0" * 4096
        while True:
            try:
                handle.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    assert os.statvfs(directory).f_bavail == 0
    return filler


def get(port: int, path: str, cert: CertFiles | None = None) -> RawResponse:
    return raw_request(port, f"gemini://localhost:{port}{path}", cert=cert)


# -- Titan uploads ---------------------------------------------------------------------


@pytest.fixture
def client_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


def put(port: int, path: str, body: bytes) -> tuple[int, str]:
    """Upload ``body`` with hospes' own Titan client and the identity "alice"; (status, meta)."""

    async def upload() -> tuple[int, str]:
        source = io.BytesIO(body)
        result = await TitanClient(timeout=10).upload(
            f"titan://localhost:{port}{path}", source, len(body), identity="alice"
        )
        return result.status, result.meta

    return asyncio.run(upload())


def test_titan_upload_larger_than_the_free_space(serve, tmpfs, tmp_path, client_data):
    """40, the existing file intact, no temporary file; still serving; an upload after freeing."""
    uploads = tmpfs("256k")
    existing = bytes(range(256)) * 64  # 16 KiB that are not all zeros
    (uploads / "page.bin").write_bytes(existing)
    capsule = tmp_path / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# Home\n")
    server = serve(
        config=Config(
            hosts=[HostConfig("localhost")],
            root=capsule,
            titan=[TitanMount("/uploads/", uploads, max_size=4 * 1024 * 1024)],
        )
    )
    assert main(["id", "new", "alice"]) == 0
    free = os.statvfs(uploads).f_bavail * os.statvfs(uploads).f_frsize
    too_big = os.urandom(free + 2 * 1024 * 1024)  # much more to send after the disk is full

    status, meta = put(server.port, "/uploads/page.bin", too_big)

    assert (status, meta) == (40, "the upload could not be stored")
    assert (uploads / "page.bin").read_bytes() == existing
    assert sorted(path.name for path in uploads.iterdir()) == ["page.bin"]  # no .page.bin.xxxx
    assert os.statvfs(uploads).f_bavail * os.statvfs(uploads).f_frsize == free
    assert get(server.port, "/").status == 20
    served = get(server.port, "/uploads/page.bin")
    assert (served.status, served.body) == (20, existing)

    # A disk filled by something else: even a small upload is refused, nothing changes.
    filler = fill(uploads)
    assert put(server.port, "/uploads/small.gmi", b"# Small\n") == (
        40,
        "the upload could not be stored",
    )
    assert sorted(path.name for path in uploads.iterdir()) == ["filler", "page.bin"]
    filler.unlink()

    fits = os.urandom(free // 2)
    status, meta = put(server.port, "/uploads/page.bin", fits)
    assert (status, meta) == (30, f"gemini://localhost:{server.port}/uploads/page.bin")
    assert (uploads / "page.bin").read_bytes() == fits
    assert sorted(path.name for path in uploads.iterdir()) == ["page.bin"]
    assert get(server.port, "/uploads/page.bin").body == fits


# -- the SQLite identity store ---------------------------------------------------------


def register(server: RunningServer, cert: CertFiles, name: str) -> RawResponse:
    return answer(server.port, "/account/register", cert, name)


def test_identity_store_on_a_full_disk(tmpfs, certs, caplog):
    """A registration that cannot be written: 40; members still recognised; then it works."""
    caplog.set_level(logging.INFO)
    state = tmpfs("1m")
    server = start_server(state)  # the demo: /account/ pages, /members/, SQLite in ``state``
    try:
        alice, bob = certs.make("alice"), certs.make("bob")
        assert register(server, alice, "alice").status == 30
        assert get(server.port, "/members/", alice).status == 20
        prompt = prompt_path(server.port, "/account/register", bob)
        # Alice was last seen two hours ago: her visit now is due a last_seen update.
        two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        with sqlite3.connect(state / "hospes.sqlite3") as database:
            database.execute(
                "UPDATE certificates SET last_seen = ?",
                (two_hours_ago.isoformat(timespec="microseconds"),),
            )
        database.close()

        filler = fill(state)
        started = time.monotonic()
        refused = raw_request(
            server.port, f"gemini://localhost:{server.port}{prompt}?bob", cert=bob
        )
        assert time.monotonic() - started < 5  # an answer, not a hang
        assert (refused.status, refused.meta) == (40, STORE_UNAVAILABLE)
        # Starting over needs a write too (the prompt's nonce): the same answer.
        again = get(server.port, "/account/register", bob)
        assert (again.status, again.meta) == (40, STORE_UNAVAILABLE)
        # The operator is told why, once (not a traceback per request on a full disk).
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == ["identity store unavailable: identity store: database or disk is full"]
        # Still serving, and the members already registered are still recognised.
        assert get(server.port, "/").status == 20
        members = get(server.port, "/members/", alice)
        assert (members.status, b"alice" in members.body) == (20, True)
        assert get(server.port, "/members/", bob).status == 61  # bob was not half-registered

        filler.unlink()
        assert register(server, bob, "bob").status == 30
        welcome = get(server.port, "/members/", bob)
        assert (welcome.status, b"Welcome, bob." in welcome.body) == (20, True)
        assert get(server.port, "/members/", alice).status == 20  # last_seen written now
    finally:
        server.stop()
    with sqlite3.connect(state / "hospes.sqlite3") as database:
        assert database.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        seen = dict(
            database.execute(
                "SELECT name, last_seen FROM accounts JOIN certificates "
                "ON certificates.account_id = accounts.id"
            ).fetchall()
        )
    database.close()
    assert sorted(seen) == ["alice", "bob"]
    assert dt.datetime.fromisoformat(seen["alice"]) > two_hours_ago + dt.timedelta(hours=1)


# -- the access log --------------------------------------------------------------------

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FULL = (
    "cannot write the access log ([Errno 28] No space left on device); "
    "lines are lost until it can be written"
)


@pytest.mark.slow
def test_access_log_on_a_full_disk(tmpfs, tmp_path):
    """Requests answered; the error said once; a reload goes on; whole lines once there is space.

    What ``AccessLog.flush`` promises on a write error: not fatal, said once a
    minute, the lines dropped.  And what the guide asks: no line corrupted.  The
    disk cuts a line in the middle (a tmpfs takes what fits in the file's last
    page); before the fixes, SIGHUP (logrotate's reopen) on the full disk ended
    in a traceback instead of "reloaded the configuration", and the next line
    was glued to the cut one.
    """
    disk = tmpfs("256k")
    log_file = disk / "access.log"
    config = tmp_path / "hospes.toml"
    config.write_text(f'access_log = "{log_file}"\n')
    process = serve_process(["--config", str(config), "--state", str(tmp_path / "state")])
    try:
        port = process.port
        assert get(port, "/").status == 20
        assert len(_wait_for_lines(log_file, 1)) == 1

        filler = fill(disk)
        padding = "x" * 900  # lines of about 1 KB: the file's last page fills at once
        for index in range(40):  # several batches (one every 0.2 s), every one failing
            assert get(port, f"/?{index:02d}{padding}").status == 20
            time.sleep(0.02)
        time.sleep(0.5)  # the last batch's turn
        said = [line for line in process.stderr if "access log" in line]
        assert len(said) == 1, said  # once, though every batch failed
        assert said[0].endswith(f" ERROR hospes.server: {FULL}"), said

        process.send_signal(signal.SIGHUP)  # logrotate's reopen, on the full disk
        process.wait_for_line("reloaded the configuration", timeout=5)
        assert get(port, "/").status == 20

        filler.unlink()
        for _ in range(5):
            assert get(port, "/?after").status == 20
        after = _wait_for_lines(log_file, 5, f'"gemini://localhost:{port}/?after"')
        assert len(after) == 5
    finally:
        code, _, stderr = process.stop(signal.SIGTERM)
    assert code == 0, stderr
    assert stderr.count(FULL) == 1  # once: every failure came within the minute
    assert "Traceback" not in stderr
    text = log_file.read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    # Every line is one line: no line glued to the end of one the disk cut.
    assert all(
        len(STAMP.findall(line)) == 1 and line.startswith(STAMP.findall(line)[0]) for line in lines
    ), lines
    cut = [line for line in lines if not LINE.match(line)]
    assert len(cut) <= 1, cut  # at most the one the disk cut, standing alone
    whole = [LINE.match(line) for line in lines if LINE.match(line)]
    targets = [match["target"] for match in whole]  # type: ignore[index]
    assert targets[0] == f"gemini://localhost:{port}/"
    assert targets[-5:] == [f"gemini://localhost:{port}/?after"] * 5
    sent = [target for target in targets if padding in target]
    assert sent == sorted(set(sent))  # none twice, in order
    assert len(sent) < 40  # the full disk did lose lines


def _wait_for_lines(path: Path, count: int, fragment: str = "") -> list[str]:
    """The lines of ``path`` containing ``fragment``, once there are ``count`` (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in path.read_text().splitlines() if fragment in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)
