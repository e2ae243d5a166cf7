"""Access rules: prefix matching, specificity, and the 60 → 62 → 61 order."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from helpers import identity_of
from hospes.app.access import (
    AccessPolicy,
    AccessRule,
    Requirement,
    banned_response,
    check,
    path_matches,
)
from hospes.app.request import Request
from hospes.gemini.url import parse_url
from hospes.store import Ban, BanKind

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


HOSTILE_REASON = "spam\r\n20 text/gemini\x1b[2J\u202eevil\x00"
ESCAPED_REASON = "spam\\x0d\\x0a20 text/gemini\\x1b[2J\\u202eevil\\x00"


def test_banned_response_escapes_the_reason_and_says_until_when():
    ban = Ban(1, BanKind.KEY, "SHA256:" + "0" * 64, HOSTILE_REASON, NOW)
    response = banned_response(ban)
    assert (response.status, response.meta) == (61, f"banned: {ESCAPED_REASON}")
    until = dt.datetime(2031, 2, 3, 4, 5, tzinfo=dt.UTC)
    timed = banned_response(Ban(2, BanKind.ACCOUNT, "7", "flooding", NOW, until))
    assert timed.meta == "banned until 2031-02-03 04:05 UTC: flooding"
    for char in ("\u202e", "\U000e0001", "é", "x"):  # escaped to 6 and 7 bytes; 2; 1
        long = banned_response(Ban(3, BanKind.ACCOUNT, "7", char * 1000, NOW))
        assert long.meta.startswith("banned: ")
        assert long.meta.endswith("…")
        assert len(long.meta.encode()) <= 1024
