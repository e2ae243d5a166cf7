"""The 6x decisions end to end with hospes' own client: every kind of certificate, real rules.

``tests/test_server_tls.py`` proves each status with ``openssl s_client``;
here the same server is asked by :class:`hospes.client.SyncClient`, which
presents identities imported from certificates made in the test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from helpers import CertFactory, CertFiles, identity_of
from hospes.app.access import AccessRule, Requirement
from hospes.app.request import Request
from hospes.app.routing import Application
from hospes.client import SyncClient
from hospes.config import Config, HostConfig


def whoami(request: Request) -> str:
    identity = request.identity
    assert identity is not None
    account = request.account.name if request.account else "-"
    return f"{identity.key_type} {identity.name} {account}\n"


@pytest.fixture
def alice(certs: CertFactory) -> CertFiles:
    return certs.make("alice")


@pytest.fixture
def server(serve, alice):
    app = Application()
    for path in ("/cert/page", "/allow/page", "/members/page"):
        app.add_route(path, whoami)
    config = Config(
        hosts=[HostConfig("localhost")],
        access=[
            AccessRule("/cert/", Requirement.CERTIFICATE),
            AccessRule(
                "/allow/",
                Requirement.ALLOWLIST,
                fingerprints=frozenset({identity_of(alice).key_fingerprint}),
            ),
            AccessRule("/members/", Requirement.ACCOUNT),
        ],
    )
    return serve(app, config=config)


@pytest.fixture
def client(tmp_path):
    with SyncClient(data_dir=tmp_path / "client", timeout=10) as client:
        yield client


def present(client: SyncClient, name: str, files: CertFiles) -> str:
    client.client.identities.import_pem(name, files.cert.read_bytes(), files.key.read_bytes())
    return name


def test_no_certificate_is_60(server, client):
    response = client.fetch(server.url("/cert/page"), identity=False)
    assert response.status == 60


@pytest.mark.parametrize(
    ("kind", "key_type"), [("ecdsa", "ECDSA P-256"), ("ed25519", "Ed25519"), ("rsa", "RSA")]
)
def test_valid_certificates_of_every_key_type(server, client, certs, kind, key_type):
    name = present(client, kind, certs.make(f"{kind}-user", kind=kind))
    response = client.fetch(server.url("/cert/page"), identity=name)
    assert response.status == 20
    assert response.body == f"{key_type} {kind}-user -\n".encode()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (CertFactory.expired, "expired"),
        (CertFactory.not_yet_valid, "not valid before"),
    ],
)
def test_invalid_certificates_are_62(server, client, certs, make, reason):
    name = present(client, "invalid", make(certs))
    response = client.fetch(server.url("/cert/page"), identity=name)
    assert response.status == 62
    assert reason in response.meta


def test_allowlist_by_key_a_renewal_and_a_second_key(server, client, certs, alice):
    assert (
        client.fetch(server.url("/allow/page"), identity=present(client, "a", alice)).status == 20
    )
    renewed = present(client, "renewed", certs.renewal(alice))
    assert client.fetch(server.url("/allow/page"), identity=renewed).status == 20
    other = present(client, "other", certs.make("alice"))  # same name, a second key
    refused = client.fetch(server.url("/allow/page"), identity=other)
    assert refused.status == 61
    assert "allow-list" in refused.meta


def test_account_rule_is_61_without_an_account_and_20_with_one(server, client, certs, alice):
    name = present(client, "member", alice)
    assert client.fetch(server.url("/members/page"), identity=name).status == 61
    store = server.server.dispatcher.store
    server.call(lambda: store.register("alice", identity_of(alice), dt.datetime.now(dt.UTC)))
    response = client.fetch(server.url("/members/page"), identity=name)
    assert response.status == 20
    assert response.body == b"ECDSA P-256 alice alice\n"
