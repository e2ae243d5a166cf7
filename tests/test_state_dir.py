"""The state directory holds private keys: created 0700 whatever the umask, keys and store 0600."""

from __future__ import annotations

import os
import stat

from hospes.server.state import ensure_server_certificate, ensure_state_dir
from hospes.store.sqlite_db import SQLiteDatabase


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_0700_under_a_permissive_umask(tmp_path):
    previous = os.umask(0)
    try:
        state = tmp_path / "a" / "b" / "state"
        paths = ensure_server_certificate(state, "localhost")
        database = SQLiteDatabase(state / "hospes.sqlite3")
        database.close()
    finally:
        os.umask(previous)
    assert mode(state) == 0o700
    assert mode(state / "certs") == 0o700
    assert mode(paths.key) == 0o600
    assert mode(state / "hospes.sqlite3") == 0o600


def test_an_existing_directory_keeps_its_mode(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    state.chmod(0o750)  # as systemd's StateDirectoryMode= might have made it
    assert ensure_state_dir(state) == state
    assert mode(state) == 0o750
