"""Certificates to identities: fingerprints, names, keys, and the validity checks behind 62."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from hospes.gemini.fingerprint import fingerprint, parse_fingerprint, short_fingerprint
from hospes.gemini.identity import CertificateError, IdentityCache, identify
from hospes.selfsigned import generate_key, self_signed_certificate

NOW = dt.datetime.now(dt.UTC)
SKEW = dt.timedelta(minutes=5)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_fingerprints_are_sha256_of_der_and_spki():
    key = generate_key("ecdsa")
    cert = self_signed_certificate(key, "alice")
    identity = identify(der(cert))
    assert identity.fingerprint == "SHA256:" + hashlib.sha256(der(cert)).hexdigest()
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert identity.key_fingerprint == "SHA256:" + hashlib.sha256(spki).hexdigest()


def test_identity_fields():
    key = generate_key("ecdsa")
    cert = self_signed_certificate(key, "alice")
    identity = identify(der(cert))
    assert identity.common_name == "alice"
    assert identity.name == "alice"
    assert identity.subject == "CN=alice"
    assert identity.issuer == "CN=alice"
    assert identity.serial == cert.serial_number
    assert identity.not_before == cert.not_valid_before_utc
    assert identity.not_after == cert.not_valid_after_utc
    assert (identity.key_type, identity.key_bits) == ("ECDSA P-256", 256)
    assert identity.self_signed
    assert identity.defect is None
    assert identity.problem(NOW, SKEW) is None


@pytest.mark.parametrize(
    ("kind", "bits", "expected"),
    [("ed25519", 0, ("Ed25519", 256)), ("rsa", 2048, ("RSA", 2048))],
)
def test_other_key_types_are_valid(kind, bits, expected):
    key = generate_key(kind, rsa_bits=bits or 2048)
    identity = identify(der(self_signed_certificate(key, "k")))
    assert (identity.key_type, identity.key_bits) == expected
    assert identity.problem(NOW, SKEW) is None


def test_renewal_keeps_key_fingerprint_and_changes_certificate_fingerprint():
    key = generate_key("ecdsa")
    first = identify(der(self_signed_certificate(key, "alice")))
    second = identify(der(self_signed_certificate(key, "alice")))
    assert first.key_fingerprint == second.key_fingerprint
    assert first.fingerprint != second.fingerprint


def test_expired_certificate_problem_names_the_date():
    key = generate_key("ecdsa")
    start = NOW - dt.timedelta(days=400)
    identity = identify(der(self_signed_certificate(key, "old", not_before=start, days=30)))
    problem = identity.problem(NOW, SKEW)
    assert problem is not None
    assert "expired" in problem
    assert (start + dt.timedelta(days=30)).strftime("%Y-%m-%d") in problem


def test_not_yet_valid_certificate():
    key = generate_key("ecdsa")
    start = NOW + dt.timedelta(days=3)
    identity = identify(der(self_signed_certificate(key, "new", not_before=start)))
    problem = identity.problem(NOW, SKEW)
    assert problem is not None
    assert "not valid before" in problem


def test_clock_skew_allowance():
    key = generate_key("ecdsa")
    start = NOW + dt.timedelta(minutes=2)
    identity = identify(der(self_signed_certificate(key, "skewed", not_before=start)))
    assert identity.problem(NOW, dt.timedelta(minutes=5)) is None
    assert identity.problem(NOW, dt.timedelta(0)) is not None


def test_weak_rsa_key_is_a_defect():
    key = generate_key("rsa", rsa_bits=1024)
    identity = identify(der(self_signed_certificate(key, "weak")))
    assert identity.key_bits == 1024
    assert identity.defect is not None
    assert "1024" in identity.defect and "2048" in identity.defect
    assert identity.problem(NOW, SKEW) == identity.defect


def test_weak_dsa_key_is_a_defect():
    key = dsa.generate_private_key(1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dsa")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    identity = identify(der(cert))
    assert identity.key_type == "DSA"
    assert identity.defect is not None


def test_bad_self_signature_is_a_defect():
    key = generate_key("ecdsa")
    other = generate_key("ecdsa")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")])
    # Subject == issuer but signed by another key: the self-signature does not verify.
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(other, hashes.SHA256())
    )
    identity = identify(der(cert))
    assert identity.self_signed
    assert identity.defect is not None
    assert "self-signature" in identity.defect


def test_certificate_issued_by_someone_else_is_not_self_signed_and_not_a_defect():
    ca_key = generate_key("ecdsa")
    key = generate_key("ecdsa")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "my ca")]))
        .public_key(key.public_key())
        .serial_number(9)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    identity = identify(der(cert))
    assert not identity.self_signed
    assert identity.problem(NOW, SKEW) is None


def test_no_common_name():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org only")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(3)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    identity = identify(der(cert))
    assert identity.common_name is None
    assert identity.name == ""


def test_hostile_common_name_is_escaped_for_display():
    key = ec.generate_private_key(ec.SECP256R1())
    hostile = "mallory\r\n=> gemini://evil/\x1b[2J\u202e" + "x" * 500
    # Builders refuse a CN over 64 characters; a hostile client's tool does not.
    with pytest.warns(UserWarning):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostile, _validate=False)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(5)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    identity = identify(der(cert))
    assert identity.common_name == hostile
    shown = identity.name
    assert "\r" not in shown and "\n" not in shown and "\x1b" not in shown
    assert "\u202e" not in shown
    assert len(shown) < 100


@pytest.mark.parametrize(
    "data", [b"", b"\x30\x00", b"not a certificate", b"\x30\x82\xff\xff" + b"\0" * 64]
)
def test_unparseable_certificate_raises_certificate_error(data):
    with pytest.raises(CertificateError, match="cannot be parsed"):
        identify(data)


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_identify_only_raises_certificate_error(data):
    try:
        identify(data)
    except CertificateError as exc:
        assert "\n" not in str(exc)


def test_identify_survives_mutated_certificates():
    """Flip every byte of a real certificate in turn: parse or refuse, never crash."""
    original = der(self_signed_certificate(generate_key("ecdsa"), "fuzz"))
    for index in range(len(original)):
        mutated = bytearray(original)
        mutated[index] ^= 0xFF
        try:
            identity = identify(bytes(mutated))
        except CertificateError:
            continue
        assert identity.fingerprint == fingerprint(bytes(mutated))


def test_cache_returns_same_identity_and_caches_failures():
    cache = IdentityCache(size=2)
    data = der(self_signed_certificate(generate_key("ecdsa"), "a"))
    assert cache.get(data) is cache.get(data)
    for _ in range(3):
        with pytest.raises(CertificateError):
            cache.get(b"garbage")


def test_cache_is_bounded():
    cache = IdentityCache(size=2)
    certificates = [der(self_signed_certificate(generate_key("ecdsa"), str(i))) for i in range(3)]
    first = cache.get(certificates[0])
    cache.get(certificates[1])
    cache.get(certificates[2])
    assert len(cache._entries) == 2
    assert cache.get(certificates[0]) is not first  # evicted, parsed again


# -- fingerprints -----------------------------------------------------------------------------

HEX = "3f2a" * 16


@pytest.mark.parametrize(
    "text",
    [
        f"SHA256:{HEX}",
        f"sha256:{HEX}",
        f"SHA256:{HEX.upper()}",
        HEX,
        HEX.upper(),
        ":".join(HEX[i : i + 2] for i in range(0, 64, 2)),
        ":".join(HEX[i : i + 2] for i in range(0, 64, 2)).upper(),
        f"sha256${HEX}",
        f"SHA-256:{HEX}",
        f"  SHA256:{HEX}\n",
    ],
)
def test_parse_fingerprint_accepts_common_forms(text):
    assert parse_fingerprint(text) == f"SHA256:{HEX}"


@pytest.mark.parametrize(
    "text", ["", "SHA256:", HEX[:-1], HEX + "0", "md5:" + HEX, "SHA1:" + HEX[:40], "zz" * 32]
)
def test_parse_fingerprint_refuses_malformed(text):
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
        parse_fingerprint(text)


@given(st.binary(min_size=32, max_size=32))
def test_parse_fingerprint_round_trip(digest):
    canonical = "SHA256:" + digest.hex()
    assert parse_fingerprint(canonical) == canonical
    assert parse_fingerprint(digest.hex().upper()) == canonical


def test_short_fingerprint():
    assert short_fingerprint(f"SHA256:{HEX}") == "SHA256:3f2a3f2a3f2a"
