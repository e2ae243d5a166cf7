"""The admin capsule over real TLS: its gate, every action end to end, the audit log, and attacks.

The demo capsule mounts it at ``/admin/`` for the store's list ``admins``; a
capsule of files mounts it with ``[admin]``.  Every change answers a prompt
at a URL carrying a nonce the server issued to the admin's certificate: the
tests walk those steps as a client does (follow a 30, answer a 10), and show
that a link someone crafted (a nonce of theirs, another admin's, a used one,
one for another action) changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import secrets
import time
from urllib.parse import quote

import pytest

from account_flow import answer
from helpers import CertFiles, RawResponse, RunningServer, identity_of, raw_request, serve_process
from hospes.admin.render import moment
from hospes.app import confirm
from hospes.cli import main
from hospes.config import Config, HostConfig, parse_config
from hospes.store import BanKind, Store

STALE = b"This confirmation is not valid"


def get(server: RunningServer, path: str, cert: CertFiles | None = None, **kwargs) -> RawResponse:
    host = kwargs.pop("hostname", "localhost")
    return raw_request(server.port, server.url(path, host), cert=cert, server_name=host, **kwargs)


def store_of(server: RunningServer) -> Store:
    store = server.server.dispatcher.store
    assert store is not None
    return store


def make_admin(server: RunningServer, cert: CertFiles) -> CertFiles:
    """Put ``cert`` on the demo's list of admins, as ``hospes allow add admins FP`` does."""
    fingerprint = identity_of(cert).fingerprint
    server.call(lambda: store_of(server).allow("admins", fingerprint))
    return cert


def walk(server: RunningServer, path: str, cert: CertFiles, *answers: str) -> RawResponse:
    """Follow 30s within the capsule and answer its 10s with ``answers``, in order."""
    response = get(server, path, cert)
    left = list(answers)
    for _ in range(10):
        if response.status == 30 and response.meta.startswith("/"):
            path = response.meta
        elif response.status == 10 and left:
            path = f"{path.split('?')[0]}?{quote(left.pop(0))}"
        else:
            assert not left, f"{response.header}: {left} not asked"
            return response
        response = get(server, path, cert)
    raise AssertionError("too many steps")


def prompt_url(server: RunningServer, path: str, cert: CertFiles, *answers: str) -> str:
    """The URL of the last prompt of ``path`` (the one carrying the nonce), not answered."""
    response = get(server, path, cert)
    left = list(answers)
    while True:
        if response.status == 30:
            path = response.meta
        elif response.status == 10 and left:
            path = f"{path.split('?')[0]}?{quote(left.pop(0))}"
        else:
            assert response.status == 10, response.header
            return path
        response = get(server, path, cert)


def audit(server: RunningServer) -> list[tuple[str, str, str, str]]:
    entries = server.call(lambda: store_of(server).audit_log())
    return [(e.admin, e.action, e.target, e.reason) for e in entries]  # type: ignore[union-attr]


def gemtext_is_ours(body: bytes) -> None:
    """No line of ``body`` was made by untrusted text: links are ours, blocks are balanced."""
    text = body.decode()
    toggles = [line for line in text.split("\n") if line.startswith("```")]
    assert all(line in ("```", "```counters", "```store") for line in toggles), toggles
    assert len(toggles) % 2 == 0
    for line in text.split("\n"):
        if line.startswith("=>"):
            assert re.match(r"=> /[!-~]* ", line), line
        assert not line.startswith(("# evil", "* evil", "> evil"))


@pytest.fixture
def admin(demo, certs) -> CertFiles:
    return make_admin(demo, certs.make("root"))


# -- the gate ---------------------------------------------------------------------------------


def test_only_admins_pass_the_gate_of_every_page(demo, certs, admin):
    stranger, old = certs.make("mallory"), certs.expired("root")
    make_admin(demo, old)
    for path in ("/admin/", "/admin/accounts", "/admin/bans", "/admin/no/such/page"):
        assert get(demo, path).status == 60
        refused = get(demo, path, stranger)
        assert refused.status == 61
        fingerprint = identity_of(stranger).fingerprint
        assert refused.meta.endswith(f"hospes allow add admins {fingerprint}")
        assert get(demo, path, old).status == 62  # an admin's expired certificate
    assert get(demo, "/admin/", admin).status == 20
    assert get(demo, "/admin/no/such/page", admin).status == 51
    # A banned admin is refused like anyone banned.
    banned = make_admin(demo, certs.make("root2"))
    fingerprint = identity_of(banned).fingerprint
    now = dt.datetime.now(dt.UTC)
    demo.call(lambda: store_of(demo).ban(BanKind.CERTIFICATE, fingerprint, "gone rogue", now))
    assert get(demo, "/admin/", banned).header == "61 banned: gone rogue"


def test_a_store_outage_is_a_40_not_a_page(demo, admin):
    assert get(demo, "/admin/accounts", admin).status == 20
    demo.call(store_of(demo).close)
    down = get(demo, "/admin/accounts", admin)
    assert down.header == "40 the identity store is unavailable; try again in a minute"


def test_config_mounts_it_in_front_of_the_capsule_for_admins_by_key(serve, certs, tmp_path):
    root = tmp_path / "capsule"
    (root / "admin").mkdir(parents=True)
    (root / "admin" / "secret.gmi").write_text("# not served\n")
    (root / "index.gmi").write_text("# Home\n")
    boss = certs.make("boss")
    config = parse_config(
        {
            "root": str(root),
            "hostnames": ["localhost", "other.localhost"],
            "admin": {"mount": "/manage/", "admins": [identity_of(boss).key_fingerprint]},
            "hosts": {"other.localhost": {"admin": {"mount": "/admin/"}}},
        }
    )
    server = serve(config=config)
    assert get(server, "/manage/", boss).status == 20
    assert get(server, "/manage/").status == 60
    assert get(server, "/admin/secret.gmi").body == b"# not served\n"  # not mounted here
    assert get(server, "/", boss).body == b"# Home\n"
    # The other host mounts it at /admin/, in front of the capsule's own files there.
    other = {"hostname": "other.localhost"}
    assert get(server, "/admin/secret.gmi", **other).status == 60
    assert get(server, "/admin/secret.gmi", boss, **other).status == 51
    assert get(server, "/manage/", boss, **other).status == 51
    # Admins by key: a renewed certificate is still the admin's.
    assert get(server, "/manage/", certs.renewal(boss, "boss")).status == 20
    assert get(server, "/manage/", certs.make("boss")).status == 61
    # A capsule of files never looks accounts up; the admin capsule does: an account ban holds.
    store = store_of(server)
    account = server.call(
        lambda: store.register("boss", identity_of(boss), dt.datetime.now(dt.UTC))
    )
    now = dt.datetime.now(dt.UTC)
    server.call(lambda: store.ban(BanKind.ACCOUNT, str(account.id), "handed over", now))
    assert get(server, "/manage/", boss).header == "61 banned: handed over"
    assert get(server, "/", boss).body == b"# Home\n"


def test_no_admin_capsule_without_the_table(serve, tmp_path):
    root = tmp_path / "capsule"
    root.mkdir()
    server = serve(config=Config(hosts=[HostConfig("localhost", root=root)]))
    assert get(server, "/admin/").status == 51
    demo_off = serve(config=parse_config({"admin": {"mount": False}}))
    assert get(demo_off, "/admin/").status == 51


# -- each action, end to end ------------------------------------------------------------------


def test_ban_through_the_pages_then_lift_it(demo, certs, admin):
    alice = certs.make("alice")
    assert answer(demo.port, "/account/register", alice, "alice").status == 30
    assert get(demo, "/members/", alice).status == 20
    account = demo.call(lambda: store_of(demo).account("alice"))
    done = walk(demo, f"/admin/ban/account/{account.id}", admin, "7d", "spamming the guestbook")
    assert done.status == 20, done.header
    assert b"# Banned" in done.body
    refused = get(demo, "/members/", alice)
    assert refused.status == 61
    assert refused.meta.startswith("banned until ")
    assert refused.meta.endswith(": spamming the guestbook")
    admin_fp = identity_of(admin).fingerprint
    [entry] = audit(demo)
    assert entry[:2] == (admin_fp, "ban")
    assert entry[2].startswith(f"account alice (id {account.id}) until ")
    assert entry[3] == "spamming the guestbook"
    # The bans page lists it, with its way out.
    bans = get(demo, "/admin/bans", admin).body.decode()
    assert "account alice" in bans and ": spamming the guestbook" in bans
    assert f"=> /admin/unban/account/{account.id} " in bans
    lifted = walk(demo, f"/admin/unban/account/{account.id}", admin, "yes")
    assert b"# Ban lifted" in lifted.body
    assert get(demo, "/members/", alice).status == 20
    assert audit(demo)[0] == (admin_fp, "unban", f"account alice (id {account.id})", "")


def test_ban_a_key_typed_by_prefix_for_ever_covers_renewals(demo, certs, admin):
    bob = certs.make("bob")
    assert answer(demo.port, "/account/register", bob, "bob").status == 30
    key = identity_of(bob).key_fingerprint
    done = walk(demo, "/admin/bans/add/key", admin, key[7:27], "", "flooding")
    assert b"banned for ever" in done.body
    assert get(demo, "/members/", certs.renewal(bob, "bob")).header == "61 banned: flooding"
    assert audit(demo)[0][1:] == ("ban", f"key {key} for ever", "flooding")
    # A prefix nobody has, or a typo, is asked again; nothing is banned.
    again = walk(demo, "/admin/bans/add/certificate", admin, "SHA256:ffffffffffffffff")
    assert again.status == 10 and "no certificate or key the store knows" in again.meta
    assert walk(demo, "/admin/bans/add/key", admin, "hello").status == 10
    assert len(audit(demo)) == 1


def test_an_admin_cannot_ban_themselves(demo, certs, admin):
    own = identity_of(admin)
    for kind, value in (("certificate", own.fingerprint), ("key", own.key_fingerprint)):
        refused = get(demo, f"/admin/ban/{kind}/{value[7:]}", admin)
        assert refused.status == 20 and b"That is you" in refused.body
    assert audit(demo) == []


def test_rename_remove_a_certificate_and_delete_an_account(demo, certs, admin):
    carol = certs.make("carol")
    assert answer(demo.port, "/account/register", carol, "carol").status == 30
    renewal = certs.renewal(carol, "carol")
    assert get(demo, "/members/", renewal).status == 20  # recorded as a second certificate
    account = demo.call(lambda: store_of(demo).account("carol"))
    page = f"/admin/accounts/{account.id}"
    listing = get(demo, page, admin).body.decode()
    assert listing.count("### carol") == 2

    assert answer(demo.port, "/account/register", certs.make("x"), "taken").status == 30
    taken = walk(demo, f"{page}/rename", admin, "taken")
    assert taken.status == 10 and "cannot be the name" in taken.meta  # asked again
    renamed = walk(demo, f"{page}/rename", admin, "caroline")
    assert b"is now called caroline" in renamed.body
    assert b"Welcome, caroline." in get(demo, "/members/", carol).body

    old = identity_of(carol).fingerprint
    no = walk(demo, f"{page}/remove/{old[7:]}", admin, "no")
    assert b"Nothing changed" in no.body
    removed = walk(demo, f"{page}/remove/{old[7:]}", admin, "yes")
    assert b"# Removed" in removed.body
    records = demo.call(lambda: store_of(demo).certificates(account.id))
    assert [r.fingerprint for r in records] == [identity_of(renewal).fingerprint]

    wrong = walk(demo, f"{page}/delete", admin, "carol")
    assert b"Not deleted" in wrong.body
    deleted = walk(demo, f"{page}/delete", admin, "CAROLINE")
    assert b"# Deleted" in deleted.body
    assert get(demo, "/members/", renewal).status == 61
    assert get(demo, page, admin).status == 51
    actions = [(action, target) for _, action, target, _ in audit(demo)]
    assert actions == [
        ("delete-account", f"account caroline (id {account.id})"),
        ("remove-certificate", f"certificate {old} of account caroline (id {account.id})"),
        ("rename", f"account carol (id {account.id}), now caroline"),
    ]


def test_an_accounts_page_shows_its_certificates_bans_and_registration(demo, certs, admin):
    """What issue 15 lists for an account's page: certificates, bans, when it registered."""
    lena = certs.make("lena")
    assert answer(demo.port, "/account/register", lena, "lena").status == 30
    phone = certs.renewal(lena, "lena-phone")
    assert get(demo, "/members/", phone).status == 20  # a second certificate of the account
    account = demo.call(lambda: store_of(demo).account("lena"))
    key = identity_of(lena).key_fingerprint
    walk(demo, f"/admin/ban/key/{key[7:]}", admin, "1h", "key leaked")
    walk(demo, f"/admin/ban/account/{account.id}", admin, "", "sold the account")
    other = identity_of(certs.make("other")).fingerprint
    walk(demo, "/admin/bans/add/certificate", admin, other, "", "not lena's")
    page = get(demo, f"/admin/accounts/{account.id}", admin)
    assert page.status == 20
    gemtext_is_ours(page.body)
    body = page.body.decode()
    assert body.startswith("# lena\n")
    assert f"Account {account.id}, registered {moment(account.created)}, 2 certificates." in body
    records = demo.call(lambda: store_of(demo).certificates(account.id))
    assert sorted(r.common_name for r in records) == ["lena", "lena-phone"]
    certificates = body[body.index("## Certificates") : body.index("## Bans")]
    for record in records:
        block = certificates[certificates.index(f"### {record.common_name}\n") :]
        block = block[: block.index("=> ")]
        for label, value in (
            ("certificate", record.fingerprint),
            ("key", record.key_fingerprint),
            ("valid", f"{record.not_before:%Y-%m-%d} to {record.not_after:%Y-%m-%d}"),
            ("first seen", moment(record.first_seen)),
            ("last seen", moment(record.last_seen)),
        ):
            assert re.search(rf"^{label} +{re.escape(value)}$", block, re.MULTILINE), (label, block)
    bans = body[body.index("## Bans") : body.index("## Change")]
    items = [line for line in bans.split("\n") if line.startswith("* ")]
    assert len(items) == 2, bans  # the key's and the account's; not another certificate's
    assert any(
        line.startswith(f"* key {key[:19]}…, since ")
        and " until " in line
        and line.endswith(": key leaked")
        for line in items
    ), items
    assert any(
        line.startswith("* account lena, since ") and line.endswith(", for ever: sold the account")
        for line in items
    ), items
    assert f"=> /admin/unban/key/{key[7:]} " in bans
    assert f"=> /admin/unban/account/{account.id} " in bans
    assert "not lena's" not in body


def test_allow_lists_add_and_remove(demo, certs, admin):
    dave = certs.make("dave")
    fingerprint = identity_of(dave).fingerprint
    assert get(demo, "/allowlist/", dave).status == 61
    lists = get(demo, "/admin/lists", admin).body.decode()
    assert "=> /admin/lists/demo demo: 0 fingerprints" in lists
    assert "admins: 1 fingerprint (its certificates are admins here)" in lists
    added = walk(demo, "/admin/lists/demo/add", admin, fingerprint, "a friend from the list")
    assert b"# Added" in added.body
    assert get(demo, "/allowlist/", dave).status == 20
    assert audit(demo)[0][1:] == (
        "allow",
        f"{fingerprint} on the list demo",
        "a friend from the list",
    )
    shown = get(demo, "/admin/lists/demo", admin).body.decode()
    assert f"=> /admin/lists/demo/remove/{fingerprint[7:]} " in shown
    removed = walk(demo, f"/admin/lists/demo/remove/{fingerprint[7:]}", admin, "yes")
    assert b"# Removed" in removed.body
    assert get(demo, "/allowlist/", dave).status == 61
    assert audit(demo)[0][1:] == ("disallow", f"{fingerprint} on the list demo", "")


def test_an_admin_cannot_take_themselves_off_the_admins_list(demo, certs, admin):
    own = identity_of(admin).fingerprint
    kept = walk(demo, f"/admin/lists/admins/remove/{own[7:]}", admin, "yes")
    assert b"shut you out" in kept.body
    assert get(demo, "/admin/", admin).status == 20
    second = make_admin(demo, certs.make("deputy"))
    other = identity_of(second).fingerprint
    assert b"# Removed" in walk(demo, f"/admin/lists/admins/remove/{other[7:]}", admin, "yes").body
    assert get(demo, "/admin/", second).status == 61


def test_search_and_the_fingerprint_page(demo, certs, admin):
    erin = certs.make("erin")
    assert answer(demo.port, "/account/register", erin, "erin").status == 30
    key = identity_of(erin).key_fingerprint
    account = demo.call(lambda: store_of(demo).account("erin"))
    for text in ("ERI", key[:20], key[7:20].upper()):
        found = walk(demo, "/admin/accounts/search", admin, text).body.decode()
        assert f"=> /admin/accounts/{account.id} erin, since " in found, text
    # A name that reads as hex digits is found by name, beside any fingerprint starting so.
    cafe = certs.make("cafe")
    assert answer(demo.port, "/account/register", cafe, "cafe").status == 30
    found = walk(demo, "/admin/accounts/search", admin, "cafe").body.decode()
    assert "=> /admin/accounts/" in found and " cafe, since " in found
    about = get(demo, f"/admin/fingerprints/{key[7:]}", admin).body.decode()
    assert f"=> /admin/accounts/{account.id} The key of erin" in about
    assert f"=> /admin/lists/demo/add/{key[7:]} Add it to the allow-list demo" in about


# -- the audit log, the overview, hospes audit ------------------------------------------------


def test_the_overview_counts_refusals_and_changes(demo, certs, admin):
    frank = certs.make("frank")
    assert get(demo, "/me").status == 60
    assert get(demo, "/allowlist/", frank).status == 61
    fingerprint = identity_of(frank).fingerprint
    walk(demo, f"/admin/ban/certificate/{fingerprint[7:]}", admin, "", "scraping")
    assert get(demo, "/me", frank).status == 20  # /me needs a certificate only
    assert get(demo, "/members/", frank).header == "61 banned: scraping"
    page = get(demo, "/admin/", admin)
    assert page.status == 20
    body = page.body.decode()
    gemtext_is_ours(page.body)
    assert re.search(r"^60 certificate required +1$", body, re.MULTILINE)
    assert re.search(r"^accepted +\d+$", body, re.MULTILINE)
    assert re.search(r"^bans in force +1$", body, re.MULTILINE)
    refusals = body[body.index("## Last refusals") : body.index("## Last changes")]
    lines = [line for line in refusals.split("\n") if line.startswith("* ")]
    assert ", 61 to 127.0.0.1 (SHA256:" in lines[0] and lines[0].endswith("banned: scraping")
    assert ", 60 to 127.0.0.1 (no certificate): this page needs" in lines[-1]
    assert f"=> /admin/fingerprints/{fingerprint[7:]} About " in refusals
    changes = body[body.index("## Last changes") :]
    assert f"ban certificate {fingerprint} for ever: scraping" in changes


def test_hospes_audit_prints_the_log(demo, certs, admin, capsys):
    gina = certs.make("gina")
    fingerprint = identity_of(gina).fingerprint
    walk(demo, "/admin/lists/demo/add", admin, fingerprint, "met at the meetup")
    walk(demo, f"/admin/ban/key/{identity_of(gina).key_fingerprint[7:]}", admin, "1h", "oops")
    assert main(["audit", "--state", str(demo.state), "--json"]) == 0
    out = capsys.readouterr().out
    entries = json.loads(out)
    assert [entry["action"] for entry in entries] == ["ban", "allow"]
    assert entries[1] == entries[1] | {
        "admin": identity_of(admin).fingerprint,
        "target": f"{fingerprint} on the list demo",
        "reason": "met at the meetup",
    }
    assert main(["audit", "--state", str(demo.state), "-n", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["TIME", "ADMIN", "ACTION", "TARGET", "REASON"]
    assert len(table) == 2 and " ban " in table[1] and table[1].endswith("oops")


def test_changes_made_with_the_hospes_command_are_on_the_overview_escaped(
    demo, certs, admin, capsys, monkeypatch
):
    """The CLI's changes sit beside the capsule's, by cli:USER; no part of them can bend a page."""
    monkeypatch.delenv("HOSPES_CONFIG", raising=False)
    monkeypatch.setenv("SUDO_USER", "evil\n=> gemini://evil.example/ click\n# evil heading")
    jane = certs.make("jane")
    fingerprint = identity_of(jane).fingerprint
    where = ["--state", str(demo.state)]
    reason = "=> gemini://evil.example/ ```"
    assert main(["allow", "add", "demo", fingerprint, "--reason", reason, *where]) == 0
    assert get(demo, "/allowlist/", jane).status == 20  # the running server sees the change
    walk(demo, f"/admin/ban/certificate/{fingerprint[7:]}", admin, "", "scraping")
    me = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
    by = f"{me} (sudo from evil\\x0a=> gemini://evil.example/ click\\x0a# evil heading)"
    for path in ("/admin/", "/admin/audit"):
        page = get(demo, path, admin)
        assert page.status == 20
        gemtext_is_ours(page.body)
        items = [line for line in page.body.decode().split("\n") if line.startswith("* ")]
        changes = [line for line in items if " on the list demo" in line or " ban " in line]
        assert changes[0].endswith(
            f", {identity_of(admin).fingerprint[:19]}…: ban certificate {fingerprint} for ever: "
            "scraping"
        )
        assert changes[1].endswith(
            f", {by}: allow {fingerprint} on the list demo: => gemini://evil.example/ ```"
        )
    capsys.readouterr()
    assert main(["audit", "--json", *where]) == 0
    assert [entry["admin"] for entry in json.loads(capsys.readouterr().out)] == [
        identity_of(admin).fingerprint,
        by.replace("\\\\", "\\"),
    ]


# -- attacks ----------------------------------------------------------------------------------


def test_a_crafted_link_changes_nothing(demo, certs, admin):
    """Stale, foreign, reused, made-up and misdirected nonces: each changes nothing."""
    henry = certs.make("henry")
    assert answer(demo.port, "/account/register", henry, "henry").status == 30
    account = demo.call(lambda: store_of(demo).account("henry"))
    ban = f"/admin/ban/account/{account.id}"

    def banned() -> bool:
        return get(demo, "/members/", henry).status == 61

    # The plain URLs, with an answer in their query, only lead to a prompt.
    assert get(demo, f"{ban}/ever?spam", admin).status == 51
    start = get(demo, f"/admin/unban/account/{account.id}?yes", admin)
    assert start.status == 30 and start.meta.startswith(f"/admin/unban/account/{account.id}/")
    # A made-up nonce.
    made_up = secrets.token_urlsafe(16)
    assert STALE in get(demo, f"{ban}/ever/{made_up}?spam", admin).body
    # Another admin's nonce: issued to the first admin's certificate only.
    deputy = make_admin(demo, certs.make("deputy"))
    theirs = prompt_url(demo, ban, admin, "")
    assert STALE in get(demo, f"{theirs}?spam", deputy).body
    assert get(demo, theirs, deputy).status == 20  # the prompt is not shown either
    # A non-admin with the same link meets the gate.
    assert get(demo, f"{theirs}?spam", henry).status == 61
    # A nonce for a ban for ever, answered at the URL of a one-hour ban; at another account's.
    nonce = theirs.rsplit("/", 1)[1]
    assert STALE in get(demo, f"{ban}/{int(time.time()) + 3600}/{nonce}?spam", admin).body
    assert get(demo, f"/admin/ban/account/999/ever/{nonce}?spam", admin).status == 51
    other = "A" if nonce[0] != "A" else "B"
    assert STALE in get(demo, f"{ban}/ever/{other}{nonce[1:]}?spam", admin).body  # tampered
    # A nonce of the account pages, answered here.
    register = prompt_url(demo, "/account/register", certs.make("newcomer"))
    assert STALE in get(demo, f"{ban}/ever/{register.rsplit('/', 1)[1]}?spam", admin).body
    assert not banned()
    assert audit(demo) == []
    # The real one works once; a replay changes nothing more.
    done = get(demo, f"{theirs}?spam", admin)
    assert b"# Banned" in done.body and banned()
    assert STALE in get(demo, f"{theirs}?spam%20again", admin).body
    assert [entry[3] for entry in audit(demo)] == ["spam"]


def test_a_nonce_older_than_its_ten_minutes_changes_nothing(demo, certs, admin, monkeypatch):
    """A stale nonce: issued to this admin for this very change, answered too late."""
    kim = certs.make("kim")
    assert answer(demo.port, "/account/register", kim, "kim").status == 30
    account = demo.call(lambda: store_of(demo).account("kim"))
    ban = f"/admin/ban/account/{account.id}"
    early, late = prompt_url(demo, ban, admin, ""), prompt_url(demo, ban, admin, "")
    issued = dt.datetime.now(dt.UTC)
    # The server runs in this process: its confirmations read the clock this test moves.
    monkeypatch.setattr(confirm, "_now", lambda: issued + dt.timedelta(minutes=10, seconds=1))
    stale = get(demo, f"{early}?spam", admin)
    assert STALE in stale.body and b"more than 10 minutes old" in stale.body
    assert get(demo, early, admin).status == 20  # not even its prompt is shown
    assert get(demo, "/members/", kim).status == 20
    assert audit(demo) == []
    # Within its ten minutes, the same change goes through: the age alone refused it.
    monkeypatch.setattr(confirm, "_now", lambda: issued + dt.timedelta(minutes=9))
    assert b"# Banned" in get(demo, f"{late}?spam", admin).body
    assert get(demo, "/members/", kim).header == "61 banned: spam"


def test_untrusted_names_reasons_and_common_names_stay_in_their_place(demo, certs, admin):
    hostile = "evil\n=> gemini://evil.example/ click\n```\n# evil heading\u202e"
    ivan = certs.make(hostile)
    assert answer(demo.port, "/account/register", ivan, "ivan").status == 30
    account = demo.call(lambda: store_of(demo).account("ivan"))
    page = get(demo, f"/admin/accounts/{account.id}", admin)
    gemtext_is_ours(page.body)
    assert (
        b"### evil\\x0a=> gemini://evil.example/ click\\x0a```\\x0a# evil heading\\u202e"
        in page.body
    )
    # A reason with a control character is refused, not stored.
    fingerprint = identity_of(ivan).fingerprint
    refused = walk(demo, f"/admin/ban/certificate/{fingerprint[7:]}", admin, "", "a\u202eb")
    assert refused.status == 10 and "printable" in refused.meta
    # A list name from the store, shown on the lists page.
    demo.call(lambda: store_of(demo).allow("x\n=> gemini://evil.example/", fingerprint))
    lists = get(demo, "/admin/lists", admin)
    gemtext_is_ours(lists.body)
    assert b"x\\x0a=> gemini://evil.example/" in lists.body
    # The overview, with the hostile certificate's refusal in it.
    assert get(demo, "/allowlist/", ivan).status == 61
    gemtext_is_ours(get(demo, "/admin/", admin).body)


# -- several workers ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_overview_adds_up_every_worker(tmp_path, certs, capsys):
    process = serve_process(["--state", str(tmp_path), "--workers", "2"])
    try:
        banner = "\n".join(process.stderr)
        port = process.port
        assert f"admin capsule at gemini://localhost:{port}/admin/ for allow-list 'admins'" in (
            banner
        )
        assert f"to add yourself: hospes allow add admins YOUR-FINGERPRINT --state {tmp_path}" in (
            banner
        )
        admin = certs.make("root")
        fingerprint = identity_of(admin).fingerprint
        assert main(["allow", "add", "admins", fingerprint, "--state", str(tmp_path)]) == 0
        assert "warning" not in capsys.readouterr().err  # the list is in use: the demo's admins
        for _ in range(8):
            assert raw_request(port, f"gemini://localhost:{port}/me").status == 60
        deadline = time.monotonic() + 5
        while True:
            page = raw_request(port, f"gemini://localhost:{port}/admin/", cert=admin)
            body = page.body.decode()
            if re.search(r"^60 certificate required +8$", body, re.MULTILINE) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.2)
        assert page.status == 20
        assert ", 2 workers. Since then:" in body
        assert re.search(r"^60 certificate required +8$", body, re.MULTILINE), body
        refusals = body[body.index("## Last refusals") : body.index("## Last changes")]
        assert refusals.count(", 60 to 127.0.0.1 (no certificate)") == 8
    finally:
        process.stop()
