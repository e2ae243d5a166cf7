"""Attacks on the account pages over real TLS (issue 9): links that change accounts, rate limits
behind a proxy, look-alike names."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from account_flow import answer, prompt_path
from helpers import (
    CertFiles,
    RawResponse,
    RunningServer,
    identity_of,
    raw_request,
    start_server,
)
from hospes.accounts import AccountLimits, account_app, code_hash, new_link_code, normalize_code
from hospes.app.dispatch import Dispatcher
from hospes.app.routing import Application
from hospes.policy.addresses import group, parse_address
from hospes.policy.limits import Limits
from hospes.selfsigned import load_certificate
from hospes.store import Store
from hospes.store.sqlite import SQLiteStore


def get(server: RunningServer, path: str, cert: CertFiles | None = None) -> RawResponse:
    return raw_request(server.port, server.url(path), cert=cert)


def store_of(server: RunningServer) -> Store:
    store = server.server.dispatcher.store
    assert store is not None
    return store


def register(server: RunningServer, cert: CertFiles, name: str) -> RawResponse:
    return answer(server.port, "/account/register", cert, name)


def link_code(server: RunningServer, cert: CertFiles) -> str:
    page = answer(server.port, "/account/link", cert, "yes")
    assert page.status == 20, page.header
    match = re.search(r"```\n([0-9A-Z]{5}-[0-9A-Z]{5})\n```", page.body.decode())
    assert match, page.body
    return match.group(1)


def follow(server: RunningServer, path: str, cert: CertFiles) -> list[RawResponse]:
    """Request ``path`` and follow redirects as a client does (at most five)."""
    responses = [get(server, path, cert)]
    while responses[-1].status in (30, 31) and len(responses) < 6:
        responses.append(get(server, responses[-1].meta, cert))
    return responses


def account_names(server: RunningServer) -> list[str]:
    return [account.name for account in server.call(store_of(server).accounts)]


def certificate_count(server: RunningServer, name: str) -> int:
    store = store_of(server)
    account = server.call(lambda: store.account(name))
    assert account is not None
    return len(server.call(lambda: store.certificates(account.id)))


# -- 3: following a link never changes an account -----------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_following_a_link_with_a_link_code_does_not_attach_the_visitor(demo, certs):
    mallory, victim = certs.make("mallory"), certs.make("victim")
    store = store_of(demo)
    account = demo.call(lambda: store.register("mallory", identity_of(mallory), _now()))
    code = new_link_code()
    canonical = normalize_code(code)
    assert canonical is not None
    expires = _now() + dt.timedelta(minutes=10)
    demo.call(lambda: store.create_link_code(account.id, code_hash(canonical), expires))
    # The victim follows mallory's link, with every redirect: at most a prompt.
    chain = follow(demo, f"/account/link?{code}", victim)
    assert [response.status for response in chain] == [30, 10]
    assert chain[0].meta.startswith("/account/link/") and "?" not in chain[0].meta
    assert certificate_count(demo, "mallory") == 1
    assert get(demo, "/members/", victim).status == 61
    # The code itself was not spent: it still works for mallory's own device.
    device = certs.make("mallory-phone")
    assert answer(demo.port, "/account/link", device, code).status == 30
    assert certificate_count(demo, "mallory") == 2


def test_following_links_that_register_or_remove_changes_nothing(demo, certs):
    victim, phone = certs.make("victim"), certs.make("phone")
    assert [r.status for r in follow(demo, "/account/register?mallorys-pick", victim)] == [30, 10]
    assert account_names(demo) == []
    store = store_of(demo)
    account = demo.call(lambda: store.register("victim", identity_of(victim), _now()))
    demo.call(lambda: store.add_certificate(account.id, identity_of(phone), _now()))
    phone_hex = identity_of(phone).fingerprint.removeprefix("SHA256:")
    remove = f"/account/certificates/remove/{phone_hex}"
    assert f"=> {remove} " in get(demo, "/account/certificates", victim).body.decode()
    chain = follow(demo, f"{remove}?yes", victim)
    assert [response.status for response in chain] == [30, 10]
    assert certificate_count(demo, "victim") == 2


def test_a_nonce_made_for_another_certificate_changes_nothing(demo, certs):
    mallory, mallory_alt, victim = certs.make("mallory"), certs.make("alt"), certs.make("victim")
    assert register(demo, mallory, "mallory").status == 30
    code = link_code(demo, mallory)
    # mallory gets prompts of his own and sends the victim their URLs, answers filled in.
    link_prompt = prompt_path(demo.port, "/account/link", mallory_alt)
    register_prompt = prompt_path(demo.port, "/account/register", mallory_alt)
    for crafted in (f"{link_prompt}?{code}", link_prompt, f"{register_prompt}?mallorys-pick"):
        refused = get(demo, crafted, victim)
        assert refused.status == 20, crafted
        assert refused.body.startswith(b"# This confirmation is not valid\n")
        assert b"Nothing changed" in refused.body
    assert get(demo, "/members/", victim).status == 61
    assert account_names(demo) == ["mallory"]
    assert certificate_count(demo, "mallory") == 1
    # Nor may a device of the same account use another one's nonce.
    phone, tablet = certs.make("phone"), certs.make("tablet")
    for device in (phone, tablet):
        assert answer(demo.port, "/account/link", device, link_code(demo, mallory)).status == 30
    listing = get(demo, "/account/certificates", mallory).body.decode()
    tablet_hex = re.search(r"remove/([0-9a-f]{64}) Remove tablet", listing)
    assert tablet_hex
    laptop_prompt = prompt_path(
        demo.port, f"/account/certificates/remove/{tablet_hex.group(1)}", mallory
    )
    refused = get(demo, f"{laptop_prompt}?yes", phone)
    assert refused.body.startswith(b"# This confirmation is not valid\n")
    assert certificate_count(demo, "mallory") == 3


def test_a_nonce_works_once(demo, certs):
    alice, phone, tablet = certs.make("alice"), certs.make("phone"), certs.make("tablet")
    assert register(demo, alice, "alice").status == 30
    here = prompt_path(demo.port, "/account/link", alice)
    first = get(demo, f"{here}?yes", alice)
    code = re.search(r"```\n(\S+)\n```", first.body.decode())
    assert first.status == 20 and code
    replayed = get(demo, f"{here}?yes", alice)
    assert replayed.body.startswith(b"# This confirmation is not valid\n")
    assert b"```" not in replayed.body
    # The replay made no new code, so the first one still works.
    phone_prompt = prompt_path(demo.port, "/account/link", phone)
    assert get(demo, f"{phone_prompt}?{code.group(1)}", phone).status == 30
    # The phone's nonce was spent by linking it: another answer to it changes nothing.
    tablet_code = link_code(demo, alice)
    assert get(demo, f"{phone_prompt}?{tablet_code}", phone).status == 20
    assert answer(demo.port, "/account/link", tablet, tablet_code).status == 30
    assert certificate_count(demo, "alice") == 3


def test_an_answer_that_changes_nothing_may_be_given_again(demo, certs):
    bob, other = certs.make("bob"), certs.make("other")
    assert register(demo, bob, "bob").status == 30
    here = prompt_path(demo.port, "/account/register", other)
    assert get(demo, f"{here}?bob", other).status == 10  # taken: the nonce is given back
    assert get(demo, f"{here}?not%20a%20name", other).status == 10
    assert (get(demo, f"{here}?robert", other).status, account_names(demo)) == (
        30,
        ["bob", "robert"],
    )


@pytest.fixture
def instant_expiry(serve):
    app = Application()
    limits = AccountLimits(confirmation_lifetime=dt.timedelta(0))
    app.mount("/account/", account_app(limits=limits))
    return serve(app)


def test_a_stale_nonce_changes_nothing(instant_expiry, certs):
    alice = certs.make("alice")
    here = prompt_path(instant_expiry.port, "/account/register", alice)
    for path in (here, f"{here}?alice"):
        stale = get(instant_expiry, path, alice)
        assert stale.status == 20
        assert stale.body.startswith(b"# This confirmation is not valid\n")
        assert b"=> /account/register Start again" in stale.body
    assert account_names(instant_expiry) == []


def test_a_nonce_issued_by_one_server_is_answered_by_another_sharing_the_store(tmp_path, certs):
    """As with --workers N (or servers sharing a database), the redirect may land elsewhere."""
    state = tmp_path / "state"
    first, second = start_server(state), start_server(state)
    try:
        alice, phone = certs.make("alice"), certs.make("phone")
        here = prompt_path(first.port, "/account/register", alice)
        assert get(second, f"{here}?alice", alice).status == 30
        code_prompt = prompt_path(second.port, "/account/link", alice)
        code = re.search(r"```\n(\S+)\n```", get(first, f"{code_prompt}?yes", alice).body.decode())
        assert code
        assert get(first, f"{code_prompt}?yes", alice).status == 20  # replayed: stale page
        assert answer(second.port, "/account/link", phone, code.group(1)).status == 30
        assert b"Welcome" not in get(first, "/account/", phone).body
        assert get(first, "/account/", phone).body.startswith(b"# alice\n")
    finally:
        first.stop()
        second.stop()


def test_nonces_per_certificate_are_bounded(demo, certs):
    alice = certs.make("alice")
    prompts = [prompt_path(demo.port, "/account/register", alice) for _ in range(20)]
    live = [get(demo, path, alice).status for path in prompts]
    assert live == [20] * 4 + [10] * 16  # the 16 newest stay, the oldest went


# -- 8: the account pages' rate limits count address groups, and trust proxies ------------------


def test_behind_a_trusted_proxy_one_visitor_cannot_block_registration(serve, certs):
    """Loopback is trusted by default (a reverse proxy on the same machine): every visitor
    comes from 127.0.0.1, and the limit per address must not count them as one."""
    assert "127.0.0.0/8" in Limits().trusted
    app = Application()
    app.mount("/account/", account_app())
    server = serve(app)
    names = [f"visitor{index}" for index in range(int(AccountLimits().register_burst) + 3)]
    for name in names:
        assert register(server, certs.make(name), name).status == 30, name
    assert sorted(account_names(server)) == sorted(names)


def test_an_untrusted_address_is_still_limited(serve, certs):
    app = Application()
    app.mount("/account/", account_app(limits=AccountLimits(register_burst=3)))
    server = serve(app, limits=Limits(trusted=()))
    statuses = [register(server, certs.make(f"v{index}"), f"v{index}").status for index in range(4)]
    assert statuses == [30, 30, 30, 44]


def _der(cert: CertFiles) -> bytes:
    return load_certificate(cert.cert).public_bytes(Encoding.DER)


def test_ipv6_addresses_count_by_their_prefix(tmp_path: Path, certs):
    """Two addresses of one /64 share the account pages' limit, as the server's own limits do."""

    async def guess(dispatcher: Dispatcher, address: str) -> int:
        """One visitor at ``address`` types a wrong link code; the status of the answer."""
        der = _der(certs.make(address.replace(":", "-")))
        key = group(parse_address(address), 64)
        start = await dispatcher.respond(
            b"gemini://localhost/account/link", der, address, 1, address_key=key
        )
        assert start.response.status == 30
        line = f"gemini://localhost{start.response.meta}?AAAAA-AAAAA".encode()
        outcome = await dispatcher.respond(line, der, address, 1, address_key=key)
        return outcome.response.status

    async def scenario() -> list[int]:
        store = SQLiteStore(tmp_path / "store.sqlite3")
        app = Application()
        app.mount("/account/", account_app(limits=AccountLimits(link_burst=2)))
        dispatcher = Dispatcher(app, hostnames=["localhost"], ports=[1965], store=store)
        try:
            addresses = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]
            # A /64 elsewhere has a bucket of its own.
            return [await guess(dispatcher, address) for address in [*addresses, "2001:db8:9::1"]]
        finally:
            await store.close()

    assert asyncio.run(scenario()) == [10, 10, 44, 10]


# -- 11: account names that look alike -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lead"),
    [
        ("aIice", "'aIice' is too much like the existing name 'alice'"),
        ("AIice", "'AIice' is too much like the existing name 'alice'"),
        ("a1ice", "'a1ice' is too much like the existing name 'alice'"),
        ("ALICE", "'ALICE' is taken"),
    ],
)
def test_a_name_that_looks_like_an_existing_one_is_refused(demo, certs, name, lead):
    assert register(demo, certs.make("alice"), "alice").status == 30
    refused = register(demo, certs.make("mallory"), name)
    assert refused.status == 10
    assert refused.meta.startswith(lead)
    assert account_names(demo) == ["alice"]


def test_look_alike_names_at_the_same_time_exactly_one_wins(demo, certs):
    names = ["bob", "b0b", "B0B", "bob", "BOB", "b0B", "Bob", "bOb"]
    contenders = [certs.make(f"c{index}") for index in range(len(names))]
    with ThreadPoolExecutor(len(names)) as pool:
        responses = list(
            pool.map(
                lambda pair: register(demo, pair[0], pair[1]), zip(contenders, names, strict=True)
            )
        )
    statuses = sorted(response.status for response in responses)
    assert statuses == [10] * 7 + [30], [response.header for response in responses]
    assert len(account_names(demo)) == 1


def test_rn_looks_like_m(demo, certs):
    assert register(demo, certs.make("x"), "mary").status == 30
    refused = register(demo, certs.make("y"), "rnary")
    assert refused.status == 10
    assert "'mary'" in refused.meta
