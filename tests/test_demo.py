"""The demo capsule tells visitors and admins the truth: the list to add to, how to make a
certificate in real clients, and a welcome that fits."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

from account_flow import answer
from helpers import identity_of, raw_request
from hospes.cli import main
from hospes.demo import DEMO_LIST
from hospes.gemini.escape import printable


def test_the_allow_list_61_names_the_list_and_the_command(demo, certs):
    guest = certs.make("guest")
    refused = raw_request(demo.port, demo.url("/allowlist/"), cert=guest)
    assert refused.status == 61
    fingerprint = identity_of(guest).fingerprint
    assert refused.meta.endswith(
        f"ask the capsule's admin to run: hospes allow add demo {fingerprint}"
    )
    # The command it names is the one that lets the guest in.
    assert DEMO_LIST == "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hospes",
            "allow",
            "add",
            "demo",
            fingerprint,
            "--state",
            str(demo.state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert raw_request(demo.port, demo.url("/allowlist/"), cert=guest).status == 20


def test_the_certificate_page_gives_real_steps_for_this_capsule(demo):
    page = raw_request(demo.port, demo.url("/certificate"))
    assert page.status == 20
    body = page.body.decode()
    address = f"localhost:{demo.port}"
    # Amfora reads client certificates from its config, keyed by host and port.
    assert f'[auth.certs]\n"{address}" = ' in body
    assert f'[auth.keys]\n"{address}" = ' in body
    assert "openssl req -x509 -newkey ec" in body
    assert "New Identity" in body  # Lagrange's menu item
    assert f"hospes id new yourname --scope gemini://{address}/" in body
    assert f"hospes get gemini://{address}/me" in body
    assert "$" not in body  # every placeholder filled
    index = raw_request(demo.port, demo.url("/")).body.decode()
    assert "=> /certificate " in index
    assert "Amfora: it asks" not in index


def test_the_certificate_page_commands_work(demo, tmp_path, monkeypatch, capsys):
    """The page's hospes commands, run as written, reach /me with the new identity."""
    body = raw_request(demo.port, demo.url("/certificate")).body.decode()
    commands = re.findall(r"^hospes (.*)$", body, re.M)
    assert [command.split()[:2] for command in commands] == [
        ["id", "new"],
        ["get", f"gemini://localhost:{demo.port}/me"],
    ]
    monkeypatch.setenv("HOSPES_DATA_DIR", str(tmp_path / "client"))
    for command in commands:
        assert main(command.split()) == 0
    shown = capsys.readouterr().out
    assert "Your certificate's common name is: yourname" in shown


def test_a_new_member_is_welcomed_and_a_returning_one_welcomed_back(demo, certs):
    alice, bob = certs.make("alice"), certs.make("bob")
    assert answer(demo.port, "/account/register", alice, "").header == "30 /members/"
    first = raw_request(demo.port, demo.url("/members/"), cert=alice).body.decode()
    assert "Welcome, alice." in first
    assert "Welcome back" not in first
    # An account made a day ago is greeted as a returning member.
    store = demo.server.dispatcher.store
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    demo.call(lambda: store.register("bob", identity_of(bob), yesterday))
    later = raw_request(demo.port, demo.url("/members/"), cert=bob).body.decode()
    assert f"Welcome back, {printable('bob')}." in later
