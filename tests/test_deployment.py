"""Deploying several nodes: public ports, and the flags that select the store and the proxies.

A node behind a load balancer or a port forward listens on a port of its own
while request URLs name the public one (or none: 1965).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import pg
from helpers import raw_request, serve_process
from hospes.config import Config, ConfigError, HostConfig, parse_config
from hospes.runner import open_store
from hospes.store import BanKind, StoreError
from hospes.store.database_url import redact
from test_server_proxy import exchange
from test_store import NOW, identity, run


def test_public_ports_are_answered_besides_the_listening_one(serve):
    server = serve(config=Config(hosts=[HostConfig("localhost")], public_ports=(1965, 443)))
    port = server.port
    assert raw_request(port, "gemini://localhost/").status == 20  # no port: 1965
    assert raw_request(port, "gemini://localhost:1965/").status == 20
    assert raw_request(port, "gemini://localhost:443/").status == 20
    assert raw_request(port, f"gemini://localhost:{port}/").status == 20
    other = raw_request(port, "gemini://localhost:1966/")
    assert (other.status, other.meta) == (53, "this server does not serve port 1966")


def test_without_public_ports_only_the_listening_port_is_served(serve):
    server = serve()
    refused = raw_request(server.port, "gemini://localhost/")
    assert (refused.status, refused.meta) == (53, "this server does not serve port 1965")


def test_public_ports_and_proxies_in_the_configuration():
    config = parse_config({"public_ports": [1965, 443], "proxy_from": ["10.0.0.0/8", "::1"]})
    assert config.public_ports == (1965, 443)
    assert config.proxy_from == ("10.0.0.0/8", "::1")
    with pytest.raises(ConfigError, match=r"public_ports\[0\]: expected a port number"):
        parse_config({"public_ports": [70000]})
    with pytest.raises(ConfigError, match="database: expected a PostgreSQL URL"):
        parse_config({"database": "sqlite:///tmp/x"})
    assert parse_config({"database": "postgres://db/x"}).database == "postgres://db/x"


def test_a_node_from_flags_behind_a_proxy_on_postgresql(tmp_path):
    with pg.schema() as database:
        process = serve_process(
            [
                *("--state", str(tmp_path / "state"), "--database", database),
                *("--proxy-from", "127.0.0.1", "--public-port", "1965"),
            ]
        )
        try:
            process.wait_for_line(r"identity store postgresql://")
            process.wait_for_line(r"behind the proxies 127\.0\.0\.1 \(PROXY protocol\)")
            header = b"PROXY TCP4 203.0.113.7 198.51.100.1 5555 1965\r\n"
            assert exchange(process.port, header, "gemini://localhost/").status == 20
        finally:
            status, _, errors = process.stop()
        assert status == 0, errors


def test_admin_commands_take_the_database_flag(tmp_path):
    from hospes.store.postgres import PostgresStore  # noqa: PLC0415 - psycopg may be missing

    with pg.schema() as database:
        store = PostgresStore(database)
        run(store.register("alice", identity("alice"), NOW))
        run(store.close())
        listed = subprocess.run(
            [sys.executable, "-m", "hospes", "accounts", "list", "--database", database],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[1].split()[0] == "alice"
    wrong = subprocess.run(
        [sys.executable, "-m", "hospes", "bans", "--database", "mysql://db/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 2
    assert "expected a PostgreSQL URL" in wrong.stderr
    down = subprocess.run(
        [sys.executable, "-m", "hospes", "bans", "--database", "postgresql://u:pw@127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 1
    assert "postgresql://u:***@127.0.0.1:1/x" in down.stderr
    assert ":pw@" not in down.stderr
    assert "Traceback" not in down.stderr


def test_admin_commands_find_the_database_in_the_nodes_configuration(tmp_path):
    """``--config`` with the nodes' file: a ban and an allow-list entry land in its database."""
    from hospes.store.postgres import PostgresStore  # noqa: PLC0415 - psycopg may be missing

    with pg.schema() as database:
        store = PostgresStore(database)
        alice = identity("alice")
        run(store.register("alice", alice, NOW))
        config = tmp_path / "hospes.toml"
        config.write_text(f'database = "{database}"\nstate = "{tmp_path / "state"}"\n')
        for command in (
            ["ban", "--account", "alice", "--reason", "spam"],
            ["allow", "add", "crew", alice.fingerprint],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "hospes", *command, "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            chosen = f"identity store {redact(database)} (the database of {config} (--config))"
            assert chosen in done.stderr
        try:
            [ban] = run(store.bans())
            assert (ban.kind, ban.reason) == (BanKind.ACCOUNT, "spam")
            assert run(store.allow_list("crew")) == [alice.fingerprint]
        finally:
            run(store.close())
        assert not (tmp_path / "state" / "hospes.sqlite3").exists()


def test_a_database_without_psycopg_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "hospes.store.postgres", None)
    config = Config(state=tmp_path, database="postgresql://db/hospes")
    with pytest.raises(StoreError, match=r"pip install 'hospes\[postgres\]'"):
        open_store(config)


def test_a_node_whose_database_is_down_does_not_start(tmp_path):
    down = subprocess.run(
        [
            *(sys.executable, "-m", "hospes", "serve", "--port", "0", "--state", str(tmp_path)),
            *("--database", "postgresql://u:pw@127.0.0.1:1/x"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 1
    assert "cannot start: cannot use the database postgresql://u:***@127.0.0.1:1/x" in down.stderr
    assert ":pw@" not in down.stderr
    assert "Traceback" not in down.stderr
