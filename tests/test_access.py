"""Access rules: prefix matching, specificity, and the 60 → 62 → 61 order."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from helpers import identity_of
from hospes.app.access import AccessPolicy, AccessRule, Requirement, check, path_matches
from hospes.app.request import Request
from hospes.gemini.url import parse_url

NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("/private/", "/private/", True),
        ("/private/", "/private", True),
        ("/private/", "/private/a/b", True),
        ("/private", "/private/a", True),
        ("/private/", "/privateer", False),
        ("/private/", "/", False),
        ("/", "/anything", True),
        ("/a/b/", "/a/b/c", True),
        ("/a/b/", "/a/bc", False),
    ],
)
def test_path_matches(prefix, path, expected):
    assert path_matches(prefix, path) is expected


def test_most_specific_rule_wins():
    policy = AccessPolicy(
        [
            AccessRule("/", Requirement.CERTIFICATE),
            AccessRule("/club/vip/", Requirement.ACCOUNT),
            AccessRule("/club/", Requirement.ALLOWLIST, fingerprints=frozenset({"x"})),
        ]
    )
    assert policy.rule_for("/club/vip/room").require is Requirement.ACCOUNT
    assert policy.rule_for("/club/bar").require is Requirement.ALLOWLIST
    assert policy.rule_for("/elsewhere").require is Requirement.CERTIFICATE
    assert AccessPolicy().rule_for("/x") is None
    assert not AccessPolicy()


def request_with(identity=None, problem=None) -> Request:
    return Request(
        parse_url("gemini://a/p"),
        "/p",
        None,
        "a",
        "127.0.0.1",
        1,
        identity=identity,
        certificate_problem=problem,
    )


def decide(rule, request):
    response = asyncio.run(check(rule, request, NOW))
    return None if response is None else response.status


def test_order_of_outcomes(certs):
    identity = identity_of(certs.make())
    certificate = AccessRule("/", Requirement.CERTIFICATE)
    allow = AccessRule("/", Requirement.ALLOWLIST, fingerprints=frozenset({identity.fingerprint}))
    deny = AccessRule("/", Requirement.ALLOWLIST, fingerprints=frozenset({"SHA256:" + "0" * 64}))
    account = AccessRule("/", Requirement.ACCOUNT, register_url="/register")
    assert decide(certificate, request_with()) == 60
    assert decide(deny, request_with()) == 60
    assert decide(certificate, request_with(problem="expired")) == 62
    assert decide(deny, request_with(problem="expired")) == 62
    assert decide(certificate, request_with(identity)) is None
    assert decide(allow, request_with(identity)) is None
    assert decide(deny, request_with(identity)) == 61
    response = asyncio.run(check(account, request_with(identity), NOW))
    assert response.status == 61
    assert "/register" in response.meta


def test_61_meta_tells_the_fingerprint_to_send(certs):
    identity = identity_of(certs.make())
    rule = AccessRule("/", Requirement.ALLOWLIST, fingerprints=frozenset({"SHA256:" + "0" * 64}))
    response = asyncio.run(check(rule, request_with(identity), NOW))
    assert identity.fingerprint in response.meta
