"""A server killed with SIGKILL in the middle of registrations leaves a consistent database."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from account_flow import answer
from helpers import CertFiles
from hospes.gemini.fingerprint import fingerprint
from hospes.store.sqlite import SQLiteStore
from test_store import run

SERVER = Path(__file__).with_name("account_server.py")
CLIENTS = 240
KILL_AFTER = 80  # registrations answered before the kill


def der_fingerprint(cert: CertFiles) -> str:
    pem = cert.cert.read_bytes()
    return fingerprint(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))


@pytest.mark.slow
def test_sigkill_during_registrations_leaves_a_consistent_database(tmp_path, certs):
    state = tmp_path / "state"
    clients = [certs.make(f"client{index}") for index in range(CLIENTS)]
    server = subprocess.Popen(
        [sys.executable, str(SERVER), str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, port_text = server.stdout.readline().strip().partition(" ")
        assert ready == "ready", server.stderr.read()
        port = int(port_text)
        registered: dict[str, str] = {}  # name -> certificate fingerprint, answered 30
        lock = threading.Lock()
        enough = threading.Event()

        def register(index: int) -> None:
            # Pairs of clients want the same name: the loser of each race gets a 10.
            name = f"user{index // 2}"
            try:
                response = answer(port, "/account/register", clients[index], name, timeout=5)
            except OSError:
                return  # the server is gone
            if response.status == 30:
                with lock:
                    assert name not in registered
                    registered[name] = der_fingerprint(clients[index])
                    if len(registered) >= KILL_AFTER:
                        enough.set()
            else:
                assert response.status == 10, response.header
                assert "is taken" in response.meta

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(register, index) for index in range(CLIENTS)]
            assert enough.wait(60), "registrations did not get going"
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            for future in futures:
                future.result()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
        if server.stderr is not None:
            server.stderr.close()
    assert server.returncode == -signal.SIGKILL
    assert len(registered) < CLIENTS // 2, "the kill came after every registration"
    print(f"{len(registered)} registrations confirmed before SIGKILL")

    path = state / "hospes.sqlite3"
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = connection.execute(
            "SELECT count(*) FROM certificates WHERE account_id NOT IN (SELECT id FROM accounts)"
        ).fetchone()[0]
        assert orphans == 0
        empty = connection.execute(
            "SELECT count(*) FROM accounts WHERE id NOT IN (SELECT account_id FROM certificates)"
        ).fetchone()[0]
        assert empty == 0
        names = [row[0] for row in connection.execute("SELECT name FROM accounts")]
        assert len(names) == len({name.lower() for name in names})
        stored = dict(
            connection.execute(
                "SELECT a.name, c.fingerprint FROM accounts AS a "
                "JOIN certificates AS c ON c.account_id = a.id"
            ).fetchall()
        )
    # Every registration the server confirmed (30) survived the kill, with its certificate.
    for name, cert_fingerprint in registered.items():
        assert stored.get(name) == cert_fingerprint, name
    # And the store opens again and works.
    store = SQLiteStore(path)
    try:
        assert len(run(store.accounts())) == len(stored)
    finally:
        run(store.close())
