"""The account cycle over real TLS, against the demo capsule (``/account/`` and ``/members/``)."""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor

from account_flow import answer, prompt_path
from helpers import CertFiles, RawResponse, RunningServer, raw_request
from hospes.store import BanKind, Store


def get(server: RunningServer, path: str, cert: CertFiles | None = None) -> RawResponse:
    return raw_request(server.port, server.url(path), cert=cert)


def store_of(server: RunningServer) -> Store:
    store = server.server.dispatcher.store
    assert store is not None
    return store


def register(server: RunningServer, cert: CertFiles, name: str = "") -> RawResponse:
    return answer(server.port, "/account/register", cert, name)


def link_code(server: RunningServer, cert: CertFiles) -> str:
    page = answer(server.port, "/account/link", cert, "yes")
    assert page.status == 20, page.header
    match = re.search(r"```\n([0-9A-Z]{5}-[0-9A-Z]{5})\n```", page.body.decode())
    assert match, page.body
    return match.group(1)


def test_register_recognise_renew_link_remove(demo, certs):
    alice = certs.make("alice")
    # A newcomer is told where to register.
    members = get(demo, "/members/", alice)
    assert members.status == 61
    assert "/account/register" in members.meta

    here = prompt_path(demo.port, "/account/register", alice)
    prompt = get(demo, here, alice)
    assert prompt.status == 10
    assert "alice" in prompt.meta  # the CN is offered
    created = get(demo, f"{here}?", alice)  # empty answer: take the CN
    assert (created.status, created.meta) == (30, "/members/")
    lounge = get(demo, "/members/", alice)
    assert lounge.status == 20
    # A new member is welcomed as one, not "back".
    assert b"Welcome, alice." in lounge.body
    assert b"back" not in lounge.body

    # Recognised on the next visit; the register page says so.
    again = get(demo, "/account/register", alice)
    assert again.status == 20
    assert b"already have an account" in again.body
    assert b"=> /members/" in again.body
    assert b"account                  alice" in get(demo, "/me", alice).body

    # A renewal with the same key is the same account, recorded as a new certificate.
    renewed = certs.renewal(alice)
    assert b"Welcome, alice." in get(demo, "/members/", renewed).body
    listing = get(demo, "/account/certificates", renewed).body.decode()
    assert listing.count("## alice") == 2
    assert "(in use now)" in listing
    assert "same key as the one in use" in listing

    # Link a second device with a one-time code.
    phone = certs.make("phone")
    code = link_code(demo, renewed)
    here = prompt_path(demo.port, "/account/link", phone)
    assert get(demo, here, phone).status == 10
    linked = get(demo, f"{here}?{code.lower()}", phone)  # case does not matter
    assert (linked.status, linked.meta) == (30, "/members/")
    assert b"Welcome, alice." in get(demo, "/members/", phone).body
    tablet = certs.make("tablet")
    reused = answer(demo.port, "/account/link", tablet, code)
    assert reused.status == 10
    assert "wrong, used or expired" in reused.meta
    assert get(demo, "/members/", tablet).status == 61

    # Remove the phone from the laptop: a typed confirmation, never by following a link.
    listing = get(demo, "/account/certificates", alice).body.decode()
    phone_hex = phone_fingerprint_hex(listing, "phone")
    remove = f"/account/certificates/remove/{phone_hex}"
    assert f"=> {remove} " in listing
    assert get(demo, remove).status == 60  # a crawler without a certificate
    here = prompt_path(demo.port, remove, alice)
    confirm = get(demo, here, alice)
    assert confirm.status == 10
    assert "yes" in confirm.meta
    declined = get(demo, here + "?no", alice)
    assert declined.status == 20
    assert b"Not removed" in declined.body
    assert get(demo, "/members/", phone).status == 20
    removed = get(demo, here + "?yes", alice)
    assert (removed.status, removed.meta) == (30, "/account/certificates")
    assert get(demo, "/members/", phone).status == 61


def phone_fingerprint_hex(listing: str, name: str) -> str:
    section = listing.split(f"## {name}", 1)[1]
    match = re.search(r"certificate  SHA256:([0-9a-f]{64})", section)
    assert match, listing
    return match.group(1)


def test_cannot_remove_the_certificate_in_use_or_the_last(demo, certs):
    alice = certs.make("alice")
    assert register(demo, alice).status == 30
    listing = get(demo, "/account/certificates", alice).body.decode()
    assert "/remove/" not in listing  # the only certificate offers no removal
    own_hex = phone_fingerprint_hex(listing, "alice")
    in_use = get(demo, f"/account/certificates/remove/{own_hex}?yes", alice)
    assert in_use.status == 20
    assert b"using now" in in_use.body
    nonce = "A" * 22  # the confirmation page refuses it too, whatever the nonce
    in_use = get(demo, f"/account/certificates/remove/{own_hex}/{nonce}?yes", alice)
    assert b"using now" in in_use.body
    assert get(demo, "/members/", alice).status == 20
    stranger = get(demo, "/account/certificates/remove/" + "ab" * 32 + "?yes", alice)
    assert stranger.status == 51
    assert get(demo, "/account/certificates/remove/nonsense", alice).status == 51


def test_ban_gives_61_with_reason_and_unban_restores(demo, certs):
    alice = certs.make("alice")
    assert register(demo, alice).status == 30
    store = store_of(demo)
    account = demo.call(lambda: store.account("alice"))
    now = dt.datetime.now(dt.UTC)
    demo.call(lambda: store.ban(BanKind.ACCOUNT, str(account.id), "spamming the guestbook", now))
    banned = get(demo, "/members/", alice)
    assert banned.status == 61
    assert banned.meta == "banned: spamming the guestbook"
    assert get(demo, "/account/certificates", alice).status == 61
    assert get(demo, "/account/link", alice).status == 61
    assert get(demo, "/account/", alice).status == 61
    # A renewal does not escape an account ban.
    assert get(demo, "/members/", certs.renewal(alice)).status == 61
    demo.call(lambda: store.unban(BanKind.ACCOUNT, str(account.id)))
    assert get(demo, "/members/", alice).status == 20

    # A banned key cannot register a new account either.
    mallory = certs.make("mallory")
    mallory_fp = _fp(demo, mallory)
    ban = demo.call(lambda: store.ban(BanKind.CERTIFICATE, mallory_fp, "troll", now))
    assert ban.kind is BanKind.CERTIFICATE
    for path in ("/account/register?mallory", "/account/register/" + "A" * 22 + "?mallory"):
        refused = get(demo, path, mallory)
        assert (refused.status, refused.meta) == (61, "banned: troll")


def test_a_hostile_ban_reason_is_escaped_on_every_page(demo, certs):
    """One 61 for a ban, escaped alike by the access rule (/members/) and the account pages."""
    reason = "spam\r\n20 text/gemini\x1b[2J\u202eevil"
    expected = "banned: spam\\x0d\\x0a20 text/gemini\\x1b[2J\\u202eevil"
    alice = certs.make("alice")
    assert register(demo, alice).status == 30
    store = store_of(demo)
    account = demo.call(lambda: store.account("alice"))
    now = dt.datetime.now(dt.UTC)
    demo.call(lambda: store.ban(BanKind.ACCOUNT, str(account.id), reason, now))
    for path in (
        "/members/",
        "/account/",
        "/account/link",
        "/account/link/" + "A" * 22,
        "/account/certificates",
    ):
        banned = get(demo, path, alice)
        assert (banned.status, banned.meta, banned.body) == (61, expected, b""), path
    mallory = certs.make("mallory")
    mallory_fp = _fp(demo, mallory)
    demo.call(lambda: store.ban(BanKind.CERTIFICATE, mallory_fp, reason, now))
    for path in ("/account/register", "/account/link", "/account/register/" + "A" * 22):
        banned = get(demo, path, mallory)
        assert (banned.status, banned.meta, banned.body) == (61, expected, b""), path


def _fp(server: RunningServer, cert: CertFiles) -> str:
    body = get(server, "/me", cert).body.decode()
    match = re.search(r"certificate fingerprint  (SHA256:[0-9a-f]{64})", body)
    assert match
    return match.group(1)


def test_expired_certificate_of_a_registered_account_gets_62(demo, certs):
    alice = certs.make("alice")
    assert register(demo, alice).status == 30
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    expired = certs.make("alice", key=alice.private_key, not_before=start, days=30)
    response = get(demo, "/members/", expired)
    assert response.status == 62
    assert "expired" in response.meta
    assert get(demo, "/members/", alice).status == 20


def test_invalid_and_taken_names_ask_again(demo, certs):
    bob = certs.make("bob")
    assert register(demo, bob, "bob").status == 30
    other = certs.make("Bob")
    taken = register(demo, other)  # the CN "Bob" is taken, whatever the case
    assert taken.status == 10
    assert "'Bob' is taken" in taken.meta
    invalid = register(demo, other, "no spaces please")
    assert invalid.status == 10
    assert "cannot be a name" in invalid.meta
    assert "1 to 32" in invalid.meta
    assert register(demo, other, "robert").status == 30


def test_hostile_common_name_is_escaped(demo, certs):
    evil = certs.make("x\n=> gemini://evil.example/ \x1b[31mclick")
    prompt = get(demo, prompt_path(demo.port, "/account/register", evil), evil)
    assert prompt.status == 10
    assert "evil.example" not in prompt.meta  # not offered as a default name
    assert register(demo, evil, "evil").status == 30
    listing = get(demo, "/account/certificates", evil).body.decode()
    assert "\x1b" not in listing
    assert "\n=> gemini://evil" not in listing
    assert "\\x0a=> gemini://evil.example/ \\x1b[31mclick" in listing


def test_link_code_guessing_is_rate_limited(demo, certs):
    alice = certs.make("alice")
    assert register(demo, alice).status == 30
    guesser = certs.make("guesser")
    here = prompt_path(demo.port, "/account/link", guesser)
    statuses = [get(demo, f"{here}?AAAAA-AAAAA", guesser).status for _ in range(6)]
    assert statuses[:5] == [10] * 5
    assert statuses[5] == 44
    # The wait is a number of seconds, as the specification wants.
    slow = get(demo, f"{here}?AAAAA-AAAAA", guesser)
    assert slow.status == 44
    assert slow.meta.isdigit()
    assert int(slow.meta) >= 1


def test_a_certificate_with_an_account_cannot_be_linked_to_another(demo, certs):
    alice, bob = certs.make("alice"), certs.make("bob")
    assert register(demo, alice).status == 30
    assert register(demo, bob).status == 30
    code = link_code(demo, alice)
    # bob's certificate has an account, so /account/link offers bob a code of his own
    # and his answer is not read as a code to redeem.
    refused = answer(demo.port, "/account/link", bob, code)
    assert (refused.status, refused.body.split(b"\n")[0]) == (20, b"# No code made")
    store = store_of(demo)
    bob_account = demo.call(lambda: store.account("bob"))
    alice_account = demo.call(lambda: store.account("alice"))
    assert bob_account is not None and alice_account is not None
    assert len(demo.call(lambda: store.certificates(alice_account.id))) == 1
    assert b"Welcome, bob." in get(demo, "/members/", bob).body  # still his own account


def test_same_name_at_the_same_time_exactly_one_wins(demo, certs):
    contenders = [certs.make(f"c{index}") for index in range(8)]
    with ThreadPoolExecutor(len(contenders)) as pool:
        responses = list(pool.map(lambda cert: register(demo, cert, "popular"), contenders))
    statuses = sorted(response.status for response in responses)
    assert statuses == [10] * 7 + [30], [response.header for response in responses]
    assert all("'popular' is taken" in r.meta for r in responses if r.status == 10)
    store = store_of(demo)
    accounts = demo.call(store.accounts)
    assert [account.name for account in accounts] == ["popular"]


def test_overview_pages(demo, certs):
    assert get(demo, "/account/").status == 60
    alice = certs.make("alice")
    page = get(demo, "/account/", alice)
    assert page.status == 20
    assert b"=> /account/register" in page.body
    assert b"=> /account/link" in page.body
    assert register(demo, alice).status == 30
    page = get(demo, "/account/", alice)
    assert page.body.startswith(b"# alice\n")
    assert b"=> /account/certificates" in page.body
    assert get(demo, "/account/certificates", certs.make("nobody")).status == 61


def test_store_changes_apply_on_the_next_request(demo, certs):
    """What the admin CLI does in another process shows at once: nothing is cached."""
    guest = certs.make("guest")
    assert get(demo, "/allowlist/", guest).status == 61
    fingerprint = _fp(demo, guest)
    store = store_of(demo)
    demo.call(lambda: store.allow("demo", fingerprint))
    assert get(demo, "/allowlist/", guest).status == 20
    demo.call(lambda: store.disallow("demo", fingerprint))
    assert get(demo, "/allowlist/", guest).status == 61
