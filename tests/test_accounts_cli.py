"""The admin commands: accounts, ban/unban/bans, allow, fingerprint; also against a live server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from account_flow import answer
from helpers import raw_request
from hospes.cli import main
from hospes.cli.ban import parse_until
from hospes.gemini.identity import identify
from hospes.store.sqlite import SQLiteStore
from test_store import NOW, identity, run


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def hospes(capsys, *argv):
    """Run ``hospes ARGV``; returns (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def populate(state):
    store = SQLiteStore(state / "hospes.sqlite3")
    alice = identity("alice")
    account = run(store.register("alice", alice, NOW))
    run(store.add_certificate(account.id, identity("phone\n\x1b[2J"), NOW))
    run(store.register("bob", identity("bob"), NOW))
    run(store.close())
    return alice


def test_accounts_list_and_show(capsys, state):
    alice = populate(state)
    status, out, _ = hospes(capsys, "accounts", "list", "--state", state)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "CERTIFICATES", "LAST", "SEEN", "STATUS"]
    assert lines[1].split()[0] == "alice"
    assert lines[1].split()[3] == "2"
    assert lines[2].split()[0] == "bob"

    status, out, _ = hospes(capsys, "accounts", "list", "--json", "--state", state)
    data = json.loads(out)
    assert [(item["name"], item["certificates"], item["status"]) for item in data] == [
        ("alice", 2, "active"),
        ("bob", 1, "active"),
    ]

    status, out, _ = hospes(capsys, "accounts", "show", "ALICE", "--state", state)
    assert status == 0
    assert alice.fingerprint in out
    assert "\x1b" not in out
    assert "phone\\x0a\\x1b[2J" in out
    status, out, _ = hospes(capsys, "accounts", "show", "alice", "--json", "--state", state)
    shown = json.loads(out)
    assert shown["name"] == "alice"
    assert {c["common_name"] for c in shown["certificates"]} == {"alice", "phone\n\x1b[2J"}


def test_unknown_names_and_missing_store_exit_2(capsys, state):
    status, _, err = hospes(capsys, "accounts", "list", "--state", state)
    assert status == 2
    assert "no identity store" in err
    assert not state.exists()  # a read does not create anything
    populate(state)
    for argv in (
        ["accounts", "show", "carol"],
        ["accounts", "rename", "carol", "caroline"],
        ["accounts", "delete", "carol", "--yes"],
        ["ban", "--account", "carol"],
        ["unban", "--account", "carol"],
    ):
        status, _, err = hospes(capsys, *argv, "--state", state)
        assert status == 2, argv
        assert "no account named 'carol'" in err


def test_rename_and_delete(capsys, state):
    alice = populate(state)
    status, out, err = hospes(capsys, "accounts", "rename", "alice", "bob", "--state", state)
    assert status == 1
    assert "taken" in err
    status, _, err = hospes(capsys, "accounts", "rename", "alice", "a b", "--state", state)
    assert status == 2
    assert "not a valid account name" in err
    status, out, _ = hospes(capsys, "accounts", "rename", "alice", "alicia", "--state", state)
    assert (status, out) == (0, "renamed alice to alicia\n")

    # Not interactive and no --yes: refuse, delete nothing.
    status, _, err = hospes(capsys, "accounts", "delete", "alicia", "--state", state)
    assert status == 2
    assert "--yes" in err
    store = SQLiteStore(state / "hospes.sqlite3")
    try:
        assert run(store.recognise(alice, NOW)).name == "alicia"
        status, out, _ = hospes(capsys, "accounts", "delete", "alicia", "--yes", "--state", state)
        assert status == 0
        assert "2 certificate(s)" in out
        assert run(store.recognise(alice, NOW)) is None
    finally:
        run(store.close())


def test_ban_unban_and_bans(capsys, state):
    alice = populate(state)
    status, out, _ = hospes(
        capsys, "ban", "--account", "alice", "--reason", "spam", "--until", "7d", "--state", state
    )
    assert status == 0
    assert out.startswith("banned account alice until ")
    status, out, _ = hospes(
        capsys, "ban", alice.key_fingerprint[7:].upper(), "--key", "--json", "--state", state
    )
    assert status == 0
    ban = json.loads(out)
    assert (ban["kind"], ban["value"]) == ("key", alice.key_fingerprint)
    assert ban["reason"] == "banned by the capsule's admin"
    status, out, _ = hospes(capsys, "bans", "--state", state)
    assert status == 0
    assert "alice" in out
    assert "spam" in out
    status, out, _ = hospes(capsys, "accounts", "list", "--state", state)
    assert "banned until" in out

    store = SQLiteStore(state / "hospes.sqlite3")
    try:
        account = run(store.account("alice"))
        found = run(store.active_ban(alice, account, dt.datetime.now(dt.UTC)))
        assert found is not None
        status, out, _ = hospes(capsys, "unban", "--account", "alice", "--state", state)
        assert (status, out) == (0, "lifted 1 ban(s) on account alice\n")
        status, _, err = hospes(capsys, "unban", "--account", "alice", "--state", state)
        assert status == 1
        assert "no ban" in err
        status, _, _ = hospes(capsys, "unban", alice.key_fingerprint, "--key", "--state", state)
        assert status == 0
        assert run(store.active_ban(alice, account, dt.datetime.now(dt.UTC))) is None
    finally:
        run(store.close())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ban", "SHA256:1234"], "not a SHA-256 fingerprint"),
        (["ban"], "FINGERPRINT or --account"),
        (["ban", "ab" * 32, "--account", "alice"], "FINGERPRINT or --account"),
        (["ban", "--account", "alice", "--key"], "--key applies"),
        (["ban", "ab" * 32, "--until", "last tuesday"], "expected a duration"),
        (["ban", "ab" * 32, "--until", "2001-01-01"], "not in the future"),
        (["ban", "ab" * 32, "--reason", "x" * 300], "at most 200"),
        (["ban", "ab" * 32, "--reason", "a\x1bb"], "printable"),
        (["allow", "add", "demo", "nonsense"], "not a SHA-256 fingerprint"),
        (["allow", "add", "no spaces", "ab" * 32], "not a valid allow-list name"),
    ],
)
def test_malformed_input_exits_2_and_writes_nothing(capsys, state, argv, message):
    status, _, err = hospes(capsys, *argv, "--state", state)
    assert status == 2
    assert message in err
    assert not state.exists()


def test_allow_lists(capsys, state):
    certificate = "SHA256:" + "cd" * 32
    status, out, _ = hospes(capsys, "allow", "add", "friends", "CD" * 32, "--state", state)
    assert (status, out) == (0, f"added {certificate} on friends\n")
    status, out, _ = hospes(capsys, "allow", "add", "friends", certificate, "--state", state)
    assert "already" in out
    status, out, _ = hospes(capsys, "allow", "show", "--state", state)
    assert out.splitlines()[1].split() == ["friends", "1"]
    status, out, _ = hospes(capsys, "allow", "show", "friends", "--json", "--state", state)
    assert json.loads(out) == {"list": "friends", "fingerprints": [certificate]}
    status, out, _ = hospes(capsys, "allow", "remove", "friends", certificate, "--state", state)
    assert status == 0
    status, _, err = hospes(capsys, "allow", "remove", "friends", certificate, "--state", state)
    assert status == 1
    assert "not on friends" in err
    status, out, _ = hospes(capsys, "allow", "show", "friends", "--state", state)
    assert out == "friends is empty\n"


def test_fingerprint_of_pem_and_der(capsys, certs, tmp_path):
    files = certs.make("alice")
    pem = files.cert.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    expected = identify(der)
    der_path = tmp_path / "alice.der"
    der_path.write_bytes(der)
    status, out, _ = hospes(capsys, "fingerprint", files.cert)
    assert status == 0
    assert f"certificate  {expected.fingerprint}\n" in out
    assert f"key          {expected.key_fingerprint}\n" in out
    status, out, _ = hospes(capsys, "fingerprint", "--json", files.cert, der_path)
    data = json.loads(out)
    assert [item["fingerprint"] for item in data] == [expected.fingerprint] * 2
    assert data[0]["key_fingerprint"] == expected.key_fingerprint
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    for path in (junk, tmp_path / "missing.pem"):
        status, _, err = hospes(capsys, "fingerprint", path)
        assert status == 2
        assert str(path) in err


def test_cli_while_the_server_runs(capsys, demo, certs):
    """The CLI is another connection to the server's database; changes apply at once."""
    alice = certs.make("alice")
    assert answer(demo.port, "/account/register", alice, "").status == 30
    assert raw_request(demo.port, demo.url("/members/"), cert=alice).status == 20
    status, _, _ = hospes(
        capsys, "ban", "--account", "alice", "--reason", "cool off", "--state", demo.state
    )
    assert status == 0
    banned = raw_request(demo.port, demo.url("/members/"), cert=alice)
    assert (banned.status, banned.meta[:6]) == (61, "banned")
    assert banned.meta.endswith(": cool off")
    assert hospes(capsys, "unban", "--account", "alice", "--state", demo.state)[0] == 0
    assert raw_request(demo.port, demo.url("/members/"), cert=alice).status == 20

    guest = certs.make("guest")
    assert raw_request(demo.port, demo.url("/allowlist/"), cert=guest).status == 61
    status, out, _ = hospes(capsys, "fingerprint", "--json", guest.cert)
    fingerprint = json.loads(out)[0]["key_fingerprint"]
    assert hospes(capsys, "allow", "add", "demo", fingerprint, "--state", demo.state)[0] == 0
    assert raw_request(demo.port, demo.url("/allowlist/"), cert=guest).status == 20
    status, out, _ = hospes(capsys, "accounts", "list", "--json", "--state", demo.state)
    assert [item["name"] for item in json.loads(out)] == ["alice"]


def test_ban_until_past_the_calendar_is_an_error_not_a_traceback(tmp_path):
    """Issue 9 item 14: ``--until 9999-12-31T23:00-05:00`` is past year 9999 in UTC.

    It used to pass the checks and end in an ``OverflowError`` traceback (status 1)
    when the store wrote it; now it is refused with what is allowed.
    """
    state = tmp_path / "state"
    for until in ("9999-12-31T23:00-05:00", "9999-12-31", "0001-01-01T00:00+05:00"):
        result = subprocess.run(
            [sys.executable, "-m", "hospes", "ban", "ab" * 32, "--until", until],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "HOSPES_CONFIG": "", "XDG_STATE_HOME": str(state)},
        )
        assert "Traceback" not in result.stderr
        assert result.returncode == 2, result.stderr
        assert "--until" in result.stderr
        assert ("at most 100 years ahead" in result.stderr) == (until[0] == "9")
    assert not state.exists()


def test_fingerprint_command_in_a_subprocess(certs):
    files = certs.make("alice")
    result = subprocess.run(
        [sys.executable, "-m", "hospes", "fingerprint", str(files.cert)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("certificate  SHA256:")
    bad = subprocess.run(
        [sys.executable, "-m", "hospes", "ban", "zz", "--state", str(files.cert.parent / "s")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "not a SHA-256 fingerprint" in bad.stderr


# -- --until ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW + dt.timedelta(days=7)),
        ("12h", NOW + dt.timedelta(hours=12)),
        ("1w2d3h4m5s", NOW + dt.timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("30M", NOW + dt.timedelta(minutes=30)),
        ("2025-06-01", dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
        ("2025-06-01T18:30", dt.datetime(2025, 6, 1, 18, 30, tzinfo=dt.UTC)),
        ("2025-06-01 18:30+02:00", dt.datetime(2025, 6, 1, 16, 30, tzinfo=dt.UTC)),
    ],
)
def test_parse_until(text, expected):
    assert parse_until(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0d",
        "7",
        "d",
        "7 days",
        "-1d",
        "2025-02-01",
        "99999w",
        "9999-12-31T23:00-05:00",
        "9999-12-31T23:59:59",
        "0001-01-01T00:00+05:00",
        "2300-01-01",
    ],
)
def test_parse_until_refuses(text):
    with pytest.raises(ValueError, match="--until"):
        parse_until(text, NOW)


@given(st.dictionaries(st.sampled_from("wdhms"), st.integers(0, 500), min_size=1))
def test_parse_until_durations(parts):
    text = "".join(f"{amount}{unit}" for unit, amount in parts.items())
    seconds = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    total = dt.timedelta(seconds=sum(seconds[unit] * n for unit, n in parts.items()))
    if total == dt.timedelta(0):
        with pytest.raises(ValueError):
            parse_until(text, NOW)
    else:
        assert parse_until(text, NOW) == NOW + total


@given(st.text(max_size=40))
def test_parse_until_any_text(text):
    try:
        result = parse_until(text, NOW)
    except ValueError as exc:
        assert "--until" in str(exc)
    else:
        assert result > NOW
        assert result.tzinfo is not None
