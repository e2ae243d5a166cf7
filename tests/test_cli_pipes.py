"""No command ends in a traceback when the reader of its output goes away (``| head -1``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hospes.cli import EXIT_BROKEN_PIPE
from hospes.config import Config, HostConfig
from hospes.store import BanKind
from hospes.store.sqlite_db import SQLiteDatabase
from test_store import NOW, fp, identity

pytestmark = pytest.mark.slow

ROWS = 2500
"""Enough output to overflow a pipe (64 KiB on Linux) and stdout's buffer: 180 KB at least."""


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    database = SQLiteDatabase(state / "hospes.sqlite3")
    try:
        for index in range(ROWS):
            database.register(f"user{index:05d}", identity(f"user{index}"), NOW)
            database.ban(BanKind.CERTIFICATE, fp(), f"spam number {index}", NOW)
            database.allow("friends", fp())
    finally:
        database.close()
    return state


def head_one(argv, env=None, size=None):
    """Run ``hospes ARGV | head -1`` (or ``head -c SIZE``): read, close the pipe.

    Returns the exit status, what was read, and stderr.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "hospes", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HOSPES_CONFIG": "", **(env or {})},
    )
    line = process.stdout.readline() if size is None else process.stdout.read(size)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    return process.wait(60), line.decode(), stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["accounts", "list", "--json"],
        ["accounts", "list"],
        ["bans"],
        ["bans", "--json"],
        ["allow", "show", "friends"],
    ],
    ids=" ".join,
)
def test_admin_commands_stop_quietly(state, argv):
    status, line, stderr = head_one([*argv, "--state", str(state)])
    assert line.strip()
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert stderr.splitlines() == [f"hospes: identity store {state / 'hospes.sqlite3'} (--state)"]
    assert status == EXIT_BROKEN_PIPE


def test_get_stops_quietly(serve, tmp_path):
    root = tmp_path / "capsule"
    root.mkdir()
    (root / "big.txt").write_text("a line of text\n" * 200_000)  # 3 MB
    server = serve(config=Config(hosts=[HostConfig("localhost")], root=root))
    status, first, stderr = head_one(
        ["get", "--data-dir", str(tmp_path / "client"), server.url("/big.txt")], size=1
    )
    assert first == "a"
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert status != 0
