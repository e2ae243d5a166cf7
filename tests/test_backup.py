"""``hospes backup``: a consistent copy while a real server serves and writes; restoring it.

Also the modes of what the server creates: a state directory 0700, keys and the
store 0600, and the same in a backup.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import stat
import threading
import time

import pytest

from helpers import identity_of, raw_request, serve_process
from hospes.cli import main
from hospes.store.sqlite_db import SQLiteDatabase
from test_store import NOW, fp

pytestmark = pytest.mark.slow


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def presented(port: int, name: str) -> str:
    """The fingerprint of the certificate the server presents for ``name`` (SNI)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def write_config(path, state, capsule, other_cert, other_key):
    path.write_text(
        f'state = "{state}"\n'
        f'root = "{capsule}"\n'
        'hostnames = ["localhost", "other.example"]\n'
        '[hosts."other.example"]\n'
        f'cert = "{other_cert}"\n'
        f'key = "{other_key}"\n'
        "[[access]]\n"
        'path = "/members/"\n'
        'require = "account"\n'
    )
    return path


def accounts(capsys, config) -> list[str]:
    assert main(["accounts", "list", "--json", "--config", str(config)]) == 0
    return sorted(item["name"] for item in json.loads(capsys.readouterr().out))


def test_backup_while_serving_and_writing_then_restore(capsys, monkeypatch, tmp_path, certs):
    monkeypatch.delenv("HOSPES_CONFIG", raising=False)
    capsule = tmp_path / "capsule"
    (capsule / "members").mkdir(parents=True)
    (capsule / "members" / "index.gmi").write_text("# Members\n")
    other = certs.make("other.example", hostnames=["other.example"])
    state = tmp_path / "srv" / "state"
    config = write_config(tmp_path / "hospes.toml", state, capsule, other.cert, other.key)
    # Accounts that wait for their first visit: each visit makes the server write.
    visitors = [certs.make(f"visitor{index}") for index in range(12)]
    server = serve_process(["--config", str(config)])
    try:
        assert (mode(state), mode(state / "certs")) == (0o700, 0o700)
        assert mode(state / "certs" / "localhost.key") == 0o600
        assert mode(state / "hospes.sqlite3") == 0o600
        for index, visitor in enumerate(visitors):
            name, fingerprint = f"visitor{index}", identity_of(visitor).fingerprint
            assert main(["accounts", "create", name, fingerprint, "--config", str(config)]) == 0
        originals = {name: presented(server.port, name) for name in ("localhost", "other.example")}
        assert originals["other.example"] == identity_of(other).fingerprint

        stop = threading.Event()
        written: list[str] = []

        def admin_writes() -> None:  # another process's writes: the admin CLI's, say
            database = SQLiteDatabase(state / "hospes.sqlite3")
            try:
                while not stop.is_set():
                    name = f"admin{len(written)}"
                    database.create_account(name, fp(), NOW)
                    written.append(name)
            finally:
                database.close()

        def visits() -> None:  # the server's own writes: it claims each awaited certificate
            for visitor in visitors:
                url = f"gemini://localhost:{server.port}/members/"
                assert raw_request(server.port, url, cert=visitor).status == 20
                time.sleep(0.05)

        writer, visitor_thread = (
            threading.Thread(target=admin_writes),
            threading.Thread(target=visits),
        )
        writer.start()
        visitor_thread.start()
        backups = []
        try:
            while visitor_thread.is_alive() or len(backups) < 3:
                before = len(written)
                dest = tmp_path / "backups" / f"b{len(backups)}"
                assert main(["backup", str(dest), "--config", str(config)]) == 0, (
                    capsys.readouterr()
                )
                backups.append((dest, before))
        finally:
            stop.set()
            writer.join(30)
            visitor_thread.join(30)
        assert len(written) > 10
    finally:
        code, _, _ = server.stop()
    assert code == 0
    capsys.readouterr()

    for dest, before in backups:
        manifest = json.loads((dest / "backup.json").read_text())
        assert {host["name"]: host["fingerprint"] for host in manifest["hosts"]} == originals
        assert mode(dest) == 0o700
        assert mode(dest / "hospes.sqlite3") == 0o600
        assert mode(dest / "certs" / "localhost.key") == 0o600
        assert mode(dest / "configured" / "other.example.key") == 0o600
        restored = SQLiteDatabase(dest / "hospes.sqlite3", create=False)
        try:
            names = {account.name for account in restored.accounts()}
        finally:
            restored.close()
        # A snapshot: every account written before the backup began is in it.
        assert {f"admin{index}" for index in range(before)} <= names
        assert {f"visitor{index}" for index in range(12)} <= names
        assert manifest["store"]["accounts"] == len(names)

    # Restore the last backup into a new state directory and serve it.
    dest, _ = backups[-1]
    restored_state = tmp_path / "restored"
    shutil.copytree(dest, restored_state)
    restored_config = write_config(
        tmp_path / "restored.toml",
        restored_state,
        capsule,
        restored_state / "configured" / "other.example.crt",
        restored_state / "configured" / "other.example.key",
    )
    expected = accounts(capsys, restored_config)
    server = serve_process(["--config", str(restored_config)])
    try:
        for name, fingerprint in originals.items():
            assert presented(server.port, name) == fingerprint
        # The same accounts, and whoever the server recognised before is recognised again.
        assert accounts(capsys, restored_config) == expected
        url = f"gemini://localhost:{server.port}/members/"
        claimed = [
            visitor
            for index, visitor in enumerate(visitors)
            if f"visitor{index}" in expected
            and raw_request(server.port, url, cert=visitor).status == 20
        ]
        assert len(claimed) == len(visitors)
        assert raw_request(server.port, url, cert=certs.make("stranger")).status == 61
    finally:
        code, _, _ = server.stop()
    assert code == 0


def test_backup_refuses_a_used_destination_and_a_missing_store(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("HOSPES_CONFIG", raising=False)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old").write_text("x")
    assert main(["backup", str(dest), "--state", str(tmp_path / "state")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "new"), "--state", str(tmp_path / "state")]) == 1
    assert "no identity store" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
    assert not (tmp_path / "new").exists()  # nothing half-made is left behind
