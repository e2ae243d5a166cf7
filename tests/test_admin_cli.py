"""The admin commands find the server's store, take fingerprint prefixes, create accounts.

The end-to-end test runs a real server from a configuration file with an
``account`` and an ``allowlist`` rule, and acts on what its access log shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import sqlite3
import time

import pytest

import pg
from helpers import identity_of, raw_request, start_server
from hospes.cli import build_parser, main
from hospes.cli import store as cli_store
from hospes.cli.serve import announce, build_config
from hospes.cli.store import find_config
from hospes.config import load_config
from hospes.runner import Started, load_certificates
from hospes.server.accesslog import LINE
from hospes.store import BanKind
from hospes.store.database_url import redact
from hospes.store.sqlite import SQLiteStore
from test_store import NOW, run


def hospes(capsys, *argv):
    """Run ``hospes ARGV`` in this process; returns (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(autouse=True)
def no_config_around(monkeypatch, tmp_path):
    """No $HOSPES_CONFIG, no system file and a private default state, unless a test sets one."""
    monkeypatch.delenv("HOSPES_CONFIG", raising=False)
    monkeypatch.setattr(cli_store, "SYSTEM_CONFIG", tmp_path / "etc" / "hospes.toml")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


def write_config(path, state, root=None, **extra):
    lines = [f'state = "{state}"']
    if root is not None:
        lines.append(f'root = "{root}"')
    lines += [f"{key} = {value}" for key, value in extra.items()]
    lines += [
        "[[access]]",
        'path = "/members/"',
        'require = "account"',
        "[[access]]",
        'path = "/friends/"',
        'require = "allowlist"',
        'lists = ["friends"]',
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_discovery_order_and_the_store_named_on_stderr(capsys, monkeypatch, tmp_path):
    explicit = write_config(tmp_path / "explicit.toml", tmp_path / "explicit-state")
    environment = write_config(tmp_path / "env.toml", tmp_path / "env-state")
    system = write_config(cli_store.SYSTEM_CONFIG, tmp_path / "system-state")
    fingerprint = "SHA256:" + "cd" * 32

    def added_to(*argv):
        status, _, err = hospes(capsys, "allow", "add", "friends", fingerprint, *argv)
        assert status == 0, err
        return err

    err = added_to()  # the system file exists: it wins over the default
    assert f"identity store {tmp_path / 'system-state' / 'hospes.sqlite3'}" in err
    assert f"(the state directory of {system})\n" in err
    monkeypatch.setenv("HOSPES_CONFIG", str(environment))
    err = added_to()
    assert f"identity store {tmp_path / 'env-state' / 'hospes.sqlite3'}" in err
    assert "($HOSPES_CONFIG)" in err
    err = added_to("--config", explicit)
    assert f"identity store {tmp_path / 'explicit-state' / 'hospes.sqlite3'}" in err
    assert "(--config)" in err
    err = added_to("--config", explicit, "--state", tmp_path / "flag-state")
    assert f"identity store {tmp_path / 'flag-state' / 'hospes.sqlite3'} (--state)" in err
    monkeypatch.delenv("HOSPES_CONFIG")
    system.unlink()
    err = added_to()
    assert f"identity store {tmp_path / 'xdg' / 'hospes' / 'hospes.sqlite3'}" in err
    assert "the default state directory" in err
    for state in ("system-state", "env-state", "explicit-state", "flag-state", "xdg/hospes"):
        store = SQLiteStore(tmp_path / state / "hospes.sqlite3")
        try:
            assert run(store.allow_list("friends")) == [fingerprint], state
        finally:
            run(store.close())


def test_serve_finds_its_configuration_the_same_way(capsys, monkeypatch, tmp_path):
    environment = write_config(tmp_path / "env.toml", tmp_path / "env-state")
    monkeypatch.setenv("HOSPES_CONFIG", str(environment))
    config = build_config(build_parser().parse_args(["serve"]))
    assert (config.state, config.source) == (tmp_path / "env-state", environment)
    monkeypatch.setenv("HOSPES_CONFIG", "")
    write_config(cli_store.SYSTEM_CONFIG, tmp_path / "system-state")
    config = build_config(build_parser().parse_args(["serve"]))
    assert config.state == tmp_path / "system-state"


def _banner(capsys, state, *argv):
    """What ``hospes serve ARGV`` would announce, up to the first hostname (no socket opened)."""
    args = build_parser().parse_args(["serve", *(str(arg) for arg in argv)])
    source = find_config(args.config)
    config = build_config(args, source)
    certificates, created = load_certificates(config)
    announce(Started(certificates, created, [("127.0.0.1", 1965)]), config, source)
    _, err = capsys.readouterr()
    assert err.startswith("hospes ")
    assert str(state) in err  # the state of the file the banner names
    return err.splitlines()[1]


def test_the_banner_names_the_configuration_file_and_why(capsys, monkeypatch, tmp_path):
    """Which file the server read, and why, is the first thing the banner says; or that none was."""
    system = write_config(cli_store.SYSTEM_CONFIG, tmp_path / "system-state")
    assert _banner(capsys, tmp_path / "system-state") == (
        f"  configuration {system} (found in {system.parent})"
    )
    environment = write_config(tmp_path / "env.toml", tmp_path / "env-state")
    monkeypatch.setenv("HOSPES_CONFIG", str(environment))
    assert _banner(capsys, tmp_path / "env-state") == (
        f"  configuration {environment} (from $HOSPES_CONFIG)"
    )
    explicit = write_config(tmp_path / "conf" / "explicit.toml", tmp_path / "explicit-state")
    monkeypatch.chdir(tmp_path)
    line = _banner(capsys, tmp_path / "explicit-state", "--config", "conf/explicit.toml")
    assert line == f"  configuration {explicit} (--config)"  # made absolute
    monkeypatch.delenv("HOSPES_CONFIG")
    system.unlink()
    assert _banner(capsys, tmp_path / "flag-state", "--state", tmp_path / "flag-state") == (
        f"  no configuration file (no --config, $HOSPES_CONFIG or {system}): "
        "built-in defaults and flags only"
    )


def test_a_broken_configuration_is_a_usage_error(capsys, monkeypatch, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("stat = 1\n")
    monkeypatch.setenv("HOSPES_CONFIG", str(broken))
    status, _, err = hospes(capsys, "bans")
    assert status == 2
    assert f"hospes: {broken}: unknown setting 'stat'" in err


def test_allow_add_warns_about_a_list_no_rule_uses(capsys, tmp_path):
    config = write_config(tmp_path / "hospes.toml", tmp_path / "state", root=tmp_path)
    fingerprint = "ab" * 32
    status, _, err = hospes(capsys, "allow", "add", "friends", fingerprint, "--config", config)
    assert status == 0
    assert "warning" not in err
    status, out, err = hospes(capsys, "allow", "add", "frends", fingerprint, "--config", config)
    assert status == 0  # added all the same: a rule may come with the next reload
    assert out.startswith("added ")
    assert f"warning: no access rule of {config} uses the list 'frends'" in err
    assert "lists in use: friends" in err
    # Serving the demo capsule (no root): its own list counts as in use.
    status, _, err = hospes(capsys, "allow", "add", "demo", fingerprint, "--state", tmp_path / "d")
    assert status == 0
    assert "warning" not in err


def known_store(state, *fingerprints):
    store = SQLiteStore(state / "hospes.sqlite3")
    try:
        for fingerprint in fingerprints:
            run(store.allow("friends", fingerprint))
    finally:
        run(store.close())


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("SHA256:abababababab", "is ambiguous"),  # two known fingerprints start so
        ("ABABABABABAB", "is ambiguous"),
        ("ab:ab:ab:ab:ab:ab:", "is ambiguous"),
        ("SHA256:0123456789ab", "no certificate or key the store knows starts with"),
        ("abababababa", "not a SHA-256 fingerprint"),  # 11 digits: too short to mean one
        ("SHA256:ababababababzz", "not a SHA-256 fingerprint"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["ban"],
        ["ban", "--key"],
        ["unban"],
        ["allow", "add", "friends"],
        ["allow", "remove", "friends"],
        ["accounts", "create", "carol"],
    ],
)
def test_ambiguous_unknown_or_short_prefixes_are_refused(capsys, tmp_path, command, typed, message):
    state = tmp_path / "state"
    first, second = "SHA256:" + "ab" * 6 + "0" * 52, "SHA256:" + "ab" * 6 + "1" * 52
    known_store(state, first, second)
    status, _, err = hospes(capsys, *command, typed, "--state", state)
    assert status == 2, err
    assert message in err
    if message == "is ambiguous":
        assert first in err and second in err
    store = SQLiteStore(state / "hospes.sqlite3")
    try:
        assert run(store.bans()) == []
        assert run(store.accounts()) == []
        assert run(store.allow_list("friends")) == [first, second]
    finally:
        run(store.close())


def test_accounts_create_lists_and_shows_the_awaited_fingerprint(capsys, tmp_path):
    state = tmp_path / "state"
    key = "SHA256:" + "ef" * 32
    status, out, err = hospes(capsys, "accounts", "create", "carol", key, "--state", state)
    assert status == 0, err
    assert out.startswith(f"created account carol: the first certificate with {key}")
    status, out, _ = hospes(capsys, "accounts", "list", "--json", "--state", state)
    [listed] = json.loads(out)
    assert (listed["name"], listed["status"], listed["certificates"]) == (
        "carol",
        "waiting for its first visit",
        0,
    )
    status, out, _ = hospes(capsys, "accounts", "show", "carol", "--state", state)
    assert f"awaits   {key}" in out
    status, _, err = hospes(capsys, "accounts", "create", "dave", key, "--state", state)
    assert status == 1
    assert "already belongs to account 'carol'" in err
    status, _, err = hospes(capsys, "accounts", "create", "CAROL", "ab" * 32, "--state", state)
    assert status == 1
    assert "taken" in err
    status, _, err = hospes(capsys, "accounts", "create", "no way", "ab" * 32, "--state", state)
    assert status == 2
    assert "not a valid account name" in err


def _access_lines(server, count):
    deadline = time.monotonic() + 10
    while len(server.log_lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return [LINE.match(line) for line in server.log_lines]


@pytest.mark.parametrize("by", ["certificate", "key"])
def test_account_rule_without_code_from_an_access_log_line(
    capsys, monkeypatch, tmp_path, certs, by
):
    """An operator acts on the 12 digits the access log shows, with no account pages mounted."""
    capsule = tmp_path / "capsule"
    (capsule / "members").mkdir(parents=True)
    (capsule / "members" / "index.gmi").write_text("# Members\n")
    (capsule / "friends").mkdir()
    (capsule / "friends" / "index.gmi").write_text("# Friends\n")
    state = tmp_path / "state"
    config_file = write_config(tmp_path / "hospes.toml", state, root=capsule)
    monkeypatch.setenv("HOSPES_CONFIG", str(config_file))
    server = start_server(state, config=load_config(config_file))
    try:
        alice = certs.make("alice")
        refused = raw_request(server.port, server.url("/members/"), cert=alice)
        assert refused.status == 61
        [line] = _access_lines(server, 1)
        short = line["fingerprint"]
        assert re.fullmatch(r"SHA256:[0-9a-f]{12}", short)
        # The store has never seen alice: a prefix cannot be resolved, the whole one can.
        status, _, err = hospes(capsys, "accounts", "create", "alice", short)
        assert status == 2
        assert "no certificate or key the store knows" in err
        who = identity_of(alice)
        typed = who.fingerprint if by == "certificate" else who.key_fingerprint
        status, _, err = hospes(capsys, "accounts", "create", "alice", typed)
        assert status == 0, err
        assert f"identity store {state / 'hospes.sqlite3'}" in err
        assert raw_request(server.port, server.url("/members/"), cert=alice).status == 20
        # Now the store knows alice's certificate and key: the log's 12 digits will do.
        assert raw_request(server.port, server.url("/friends/"), cert=alice).status == 61
        status, out, err = hospes(capsys, "allow", "add", "friends", short[7:].upper())
        assert status == 0, err
        assert f"{short} is {who.fingerprint}" in err
        assert out == f"added {who.fingerprint} on friends\n"
        assert raw_request(server.port, server.url("/friends/"), cert=alice).status == 20
        status, _, err = hospes(capsys, "ban", short, "--reason", "spam")
        assert status == 0, err
        banned = raw_request(server.port, server.url("/members/"), cert=alice)
        assert (banned.status, banned.meta) == (61, "banned: spam")
        status, _, err = hospes(capsys, "unban", short)
        assert status == 0, err
        assert raw_request(server.port, server.url("/members/"), cert=alice).status == 20
    finally:
        server.stop()


def test_admin_commands_on_a_postgresql_store(capsys):
    """``--database URL``: the same commands on a store several nodes share; no password shown."""
    pg.require()
    with pg.schema() as url:
        key = "SHA256:" + "ef" * 32
        status, _, err = hospes(capsys, "accounts", "create", "carol", key, "--database", url)
        assert status == 0, err
        assert f"hospes: identity store {redact(url)} (--database)\n" in err
        status, _, err = hospes(capsys, "ban", "ef" * 6, "--key", "--database", url)
        assert status == 0, err
        assert f"is {key}" in err
        status, out, _ = hospes(capsys, "accounts", "list", "--json", "--database", url)
        [listed] = json.loads(out)
        assert (listed["name"], listed["status"]) == ("carol", "waiting for its first visit")
        status, out, _ = hospes(capsys, "bans", "--json", "--database", url)
        assert [(ban["kind"], ban["value"]) for ban in json.loads(out)] == [("key", key)]


# -- the audit log of the admin commands --------------------------------------------------


def _me() -> str:
    return f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


@contextlib.contextmanager
def _stores(kind, tmp_path):
    """The store options of ``kind`` (SQLite in a state directory, or PostgreSQL)."""
    if kind == "sqlite":
        yield ["--state", tmp_path / "state"]
    else:
        pg.require()
        with pg.schema() as url:
            yield ["--database", url]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_every_change_an_admin_command_makes_is_audited(capsys, monkeypatch, tmp_path, kind):
    """Each mutating command writes who (cli:USER), what, to what and why; a no-op, nothing."""
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.delenv("DOAS_USER", raising=False)
    cert, key = "SHA256:" + "ab" * 32, "SHA256:" + "cd" * 32
    with _stores(kind, tmp_path) as where:

        def ok(*argv):
            status, out, err = hospes(capsys, *argv, *where)
            assert status == 0, err
            assert "audit log" not in err
            return out

        ok("accounts", "create", "carol", key, "--reason", "asked by mail")
        ok("accounts", "rename", "carol", "caroline")
        ok("allow", "add", "friends", cert, "--reason", "met at the meetup")
        ok("allow", "add", "friends", cert)  # already there: nothing changed, nothing written
        ok("allow", "remove", "friends", cert[7:19])  # a prefix, resolved
        assert hospes(capsys, "allow", "remove", "friends", cert, *where)[0] == 1  # not on it
        ok("ban", cert, "--reason", "spam", "--until", "2100-01-01")
        ok("ban", "--account", "caroline", "--reason", "flooding")
        ok("unban", cert, "--reason", "appealed")
        assert hospes(capsys, "unban", cert, *where)[0] == 1  # no ban left: nothing written
        ok("accounts", "delete", "caroline", "--yes", "--reason", "asked to leave")
        entries = json.loads(ok("audit", "--json"))
        found = [(e["admin"], e["action"], e["target"], e["reason"]) for e in entries]
        account = re.search(r"\(id (\d+)\)", entries[-1]["target"]).group(1)
        me = _me()
        assert found == [
            (me, "delete-account", f"account caroline (id {account})", "asked to leave"),
            (me, "unban", f"certificate {cert}", "appealed"),
            (me, "ban", f"account caroline (id {account}) for ever", "flooding"),
            (me, "ban", f"certificate {cert} until 2100-01-01 00:00:00 UTC", "spam"),
            (me, "disallow", f"{cert} on the list friends", ""),
            (me, "allow", f"{cert} on the list friends", "met at the meetup"),
            (me, "rename", f"account carol (id {account}), now caroline", ""),
            (me, "create-account", f"account carol (id {account}), for {key}", "asked by mail"),
        ]
        table = ok("audit", "-n", "3").splitlines()
        assert table[0].split() == ["TIME", "ADMIN", "ACTION", "TARGET", "REASON"]
        assert table[1].split()[2:5] == [me, "delete-account", "account"]  # cli:USER whole
        assert table[3].split()[2:5] == [me, "ban", "account"]


def test_who_ran_sudo_is_recorded_escaped(capsys, monkeypatch, tmp_path):
    state = tmp_path / "state"
    fingerprint = "SHA256:" + "ef" * 32
    monkeypatch.setenv("SUDO_USER", "alice")
    assert hospes(capsys, "allow", "add", "friends", fingerprint, "--state", state)[0] == 0
    monkeypatch.setenv("SUDO_USER", "x\n=> gemini://evil.example/ \x1b[2J")
    assert hospes(capsys, "allow", "remove", "friends", fingerprint, "--state", state)[0] == 0
    monkeypatch.setenv("SUDO_USER", pwd.getpwuid(os.geteuid()).pw_name)  # sudo to oneself
    monkeypatch.setenv("DOAS_USER", "bob")  # not both: sudo's word is taken
    assert hospes(capsys, "ban", fingerprint, "--state", state)[0] == 0
    _, out, _ = hospes(capsys, "audit", "--json", "--state", state)
    assert [entry["admin"] for entry in json.loads(out)] == [
        _me(),
        f"{_me()} (sudo from x\\x0a=> gemini://evil.example/ \\x1b[2J)",
        f"{_me()} (sudo from alice)",
    ]
    monkeypatch.delenv("SUDO_USER")
    assert hospes(capsys, "unban", fingerprint, "--state", state)[0] == 0
    _, out, _ = hospes(capsys, "audit", "--json", "-n", "1", "--state", state)
    assert json.loads(out)[0]["admin"] == f"{_me()} (doas from bob)"


@pytest.mark.parametrize(
    "argv",
    [
        ["allow", "add", "friends", "ab" * 32],
        ["allow", "remove", "friends", "ab" * 32],
        ["unban", "ab" * 32],
        ["accounts", "create", "dora", "ab" * 32],
        ["accounts", "rename", "dora", "dorothy"],
        ["accounts", "delete", "dora", "--yes"],
    ],
)
def test_an_unusable_reason_is_refused_before_anything_changes(capsys, tmp_path, argv):
    state = tmp_path / "state"
    store = SQLiteStore(state / "hospes.sqlite3")
    try:
        run(store.create_account("dora", "SHA256:" + "cd" * 32, NOW))
        run(store.allow("friends", "SHA256:" + "ab" * 32))
        run(store.ban(BanKind.CERTIFICATE, "SHA256:" + "ab" * 32, "spam", NOW, None))
        for reason in ("a\u202eb", "x" * 201):
            status, _, err = hospes(capsys, *argv, "--reason", reason, "--state", state)
            assert status == 2, err
            assert "--reason: at most 200 printable characters" in err
        assert run(store.audit_log()) == []
        assert run(store.allow_list("friends")) == ["SHA256:" + "ab" * 32]
        assert [account.name for account in run(store.accounts())] == ["dora"]
        assert len(run(store.bans())) == 1
    finally:
        run(store.close())


def test_a_change_whose_audit_entry_fails_is_done_and_said(capsys, tmp_path):
    """The change is made: the command succeeds, and says on stderr the log lacks it."""
    state = tmp_path / "state"
    fingerprint = "SHA256:" + "ab" * 32
    assert hospes(capsys, "allow", "add", "friends", fingerprint, "--state", state)[0] == 0
    database = sqlite3.connect(state / "hospes.sqlite3")
    with database:  # what a full disk or a damaged table would do to this one insert
        database.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    database.close()
    status, out, err = hospes(capsys, "allow", "remove", "friends", fingerprint, "--state", state)
    assert status == 0
    assert out == f"removed {fingerprint} from friends\n"
    assert "hospes: warning: done, but the audit log could not record it (disallow " in err
    assert "disk full" in err
    store = SQLiteStore(state / "hospes.sqlite3")
    try:
        assert run(store.allow_list("friends")) == []
        assert [entry.action for entry in run(store.audit_log())] == ["allow"]
    finally:
        run(store.close())
