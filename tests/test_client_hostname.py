"""Hostname checks against certificates: SANs, wildcards, IP addresses, IDNA, the CN fallback."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from hospes.client.hostname import (
    certificate_names,
    dns_name_matches,
    match_hostname,
    normalize_dns_name,
)
from hospes.gemini.url import parse_url
from hospes.selfsigned import generate_key

KEY = generate_key("ecdsa")
NOW = dt.datetime.now(dt.UTC)


def certificate(common_name: str = "cn.example", *, dns=(), ips=(), san: bool = True):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
    )
    if san:
        names = [x509.DNSName(value) for value in dns]
        names += [x509.IPAddress(ipaddress.ip_address(value)) for value in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(KEY, hashes.SHA256())


def host_of(url: str) -> str:
    return parse_url(url).host


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.org", "example.org", True),
        ("Example.ORG", "example.org", True),
        ("example.org.", "example.org", True),
        ("example.org", "www.example.org", False),
        ("*.example.org", "www.example.org", True),
        ("*.example.org", "example.org", False),
        ("*.example.org", "a.b.example.org", False),
        ("*.example.org", "xn--caf-dma.example.org", True),
        ("*.org", "example.org", False),
        ("*", "localhost", False),
        ("w*.example.org", "www.example.org", False),
        ("www.*.org", "www.example.org", False),
        ("*.*.org", "a.b.org", False),
        ("xn--*.example.org", "xn--caf-dma.example.org", False),
        ("", "example.org", False),
    ],
)
def test_dns_name_matches(pattern, host, expected):
    assert dns_name_matches(pattern, host) is expected


def test_dns_names():
    cert = certificate(dns=["gemini.example", "*.capsules.example"])
    assert match_hostname(cert, "gemini.example", common_name_fallback=False)
    assert match_hostname(cert, "alice.capsules.example", common_name_fallback=False)
    assert not match_hostname(cert, "capsules.example", common_name_fallback=False)
    assert not match_hostname(cert, "cn.example", common_name_fallback=True)  # SAN present


def test_ip_addresses_match_only_ip_names():
    cert = certificate(dns=["127.0.0.1"], ips=["::1", "192.0.2.7"])
    assert match_hostname(cert, host_of("gemini://[0:0:0:0:0:0:0:1]/"), common_name_fallback=False)
    assert match_hostname(cert, "192.0.2.7", common_name_fallback=False)
    # A DNS name spelling an address does not count, nor does the CN.
    assert not match_hostname(cert, "127.0.0.1", common_name_fallback=True)
    only_cn = certificate("127.0.0.1", san=False)
    assert not match_hostname(only_cn, "127.0.0.1", common_name_fallback=True)


def test_idna_hosts():
    cert = certificate(dns=["xn--caf-dma.example"])
    assert match_hostname(cert, host_of("gemini://café.example/"), common_name_fallback=False)
    assert match_hostname(cert, host_of("gemini://CAFÉ.example/"), common_name_fallback=False)
    assert not match_hostname(cert, host_of("gemini://cafe.example/"), common_name_fallback=False)


def test_common_name_fallback_only_without_san():
    cert = certificate("localhost", san=False)
    assert match_hostname(cert, "localhost", common_name_fallback=True)
    assert not match_hostname(cert, "localhost", common_name_fallback=False)
    assert certificate_names(cert) == ([], [], "localhost")


def test_normalize_dns_name():
    assert normalize_dns_name("Café.Example.") == "xn--caf-dma.example"
    assert normalize_dns_name("*.Example") == "*.example"
    assert normalize_dns_name(".") is None
    assert normalize_dns_name("") is None
    assert normalize_dns_name("a" * 64 + "é.example") is None  # label too long for IDNA


LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")
NAME = st.lists(LABEL, min_size=2, max_size=5).map(".".join)


@given(NAME)
def test_a_name_matches_itself_in_any_case(name):
    assert dns_name_matches(name.upper() + ".", name)


@given(LABEL, NAME)
def test_wildcard_matches_exactly_one_label(label, rest):
    assert dns_name_matches(f"*.{rest}", f"{label}.{rest}")
    assert not dns_name_matches(f"*.{rest}", rest)
    assert not dns_name_matches(f"*.{rest}", f"{label}.{label}.{rest}")


@given(NAME, NAME)
def test_different_names_do_not_match(first, second):
    assert dns_name_matches(first, second) is (first == second)


@given(st.text(max_size=80), st.text(max_size=80))
def test_matching_never_raises(pattern, host):
    assert dns_name_matches(pattern, host) in (True, False)
