"""The TOFU store: verdicts, atomic updates, concurrent writers, damaged files."""

from __future__ import annotations

import datetime as dt
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hospes.client import ClientFileError, KeyChanged, KnownHosts, ServerCertificate, Verdict

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def seen(key: int, cert: int, days: int = 365) -> ServerCertificate:
    """A certificate as the client summarises it; fingerprints made up from small numbers."""
    return ServerCertificate(
        fingerprint=f"SHA256:{cert:064x}",
        key_fingerprint=f"SHA256:{key:064x}",
        key_type="ECDSA P-256",
        key_bits=256,
        common_name="localhost",
        dns_names=("localhost",),
        ip_addresses=(),
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=days),
        self_signed=True,
    )


@pytest.fixture
def store(tmp_path: Path) -> KnownHosts:
    return KnownHosts(tmp_path / "data" / "known_hosts.sqlite3")


def test_verdicts(store):
    assert store.get("example.org", 1965) is None
    assert store.record("example.org", 1965, seen(1, 1), now=NOW) == (Verdict.FIRST_USE, None)
    verdict, previous = store.record("example.org", 1965, seen(1, 1), now=NOW)
    assert verdict is Verdict.KNOWN
    assert previous is not None
    assert previous.times_seen == 1
    later = NOW + dt.timedelta(days=30)
    verdict, _ = store.record("example.org", 1965, seen(1, 2, days=800), now=later)
    assert verdict is Verdict.RENEWED
    pin = store.get("example.org", 1965)
    assert pin is not None
    assert (pin.key_fingerprint, pin.cert_fingerprint) == (f"SHA256:{1:064x}", f"SHA256:{2:064x}")
    assert pin.not_after == NOW + dt.timedelta(days=800)
    assert (pin.first_seen, pin.last_seen, pin.times_seen) == (NOW, later, 3)

    with pytest.raises(KeyChanged) as caught:
        store.record("example.org", 1965, seen(9, 9), now=later)
    assert caught.value.pinned == pin
    assert caught.value.presented.key_fingerprint == f"SHA256:{9:064x}"
    assert store.get("example.org", 1965) == pin  # nothing recorded


def test_hosts_and_ports_are_separate(store):
    store.record("example.org", 1965, seen(1, 1))
    assert store.record("example.org", 1966, seen(2, 2))[0] is Verdict.FIRST_USE
    assert store.record("other.example", 1965, seen(3, 3))[0] is Verdict.FIRST_USE
    assert [(h.host, h.port) for h in store.all()] == [
        ("example.org", 1965),
        ("example.org", 1966),
        ("other.example", 1965),
    ]


def test_accept_key_replaces_the_pin_only_for_that_key(store):
    store.record("example.org", 1965, seen(1, 1), now=NOW)
    with pytest.raises(KeyChanged):
        store.record("example.org", 1965, seen(2, 2), accept_key=f"SHA256:{3:064x}")
    later = NOW + dt.timedelta(days=1)
    verdict, previous = store.record(
        "example.org", 1965, seen(2, 2), accept_key=f"SHA256:{2:064x}", now=later
    )
    assert verdict is Verdict.KEY_ACCEPTED
    assert previous is not None
    assert previous.key_fingerprint == f"SHA256:{1:064x}"
    pin = store.get("example.org", 1965)
    assert pin is not None
    assert (pin.key_fingerprint, pin.first_seen, pin.times_seen) == (f"SHA256:{2:064x}", later, 1)


def test_trust_and_remove(store):
    assert store.remove("example.org", 1965) is False
    assert store.trust("example.org", 1965, seen(1, 1)) is None
    old = store.trust("example.org", 1965, seen(2, 2))
    assert old is not None
    assert old.key_fingerprint == f"SHA256:{1:064x}"
    assert store.record("example.org", 1965, seen(2, 2))[0] is Verdict.KNOWN
    assert store.remove("example.org", 1965) is True
    assert store.get("example.org", 1965) is None


def test_reading_creates_nothing_and_the_file_is_private(store):
    assert store.all() == []
    assert not store.path.exists()
    store.record("example.org", 1965, seen(1, 1))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_a_damaged_file_is_reported_and_kept(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"this is not SQLite, but someone's pins might be in here\n" * 100)
    with pytest.raises(ClientFileError, match="not a known-hosts file"):
        store.get("example.org", 1965)
    with pytest.raises(ClientFileError, match="move it away"):
        store.record("example.org", 1965, seen(1, 1))
    assert store.path.read_bytes().startswith(b"this is not SQLite")


def test_concurrent_first_uses_agree_on_one_key(store):
    """Sixteen writers meet the host at once, half with another key: one key wins, once."""
    barrier = threading.Barrier(16)
    results: list[str] = []

    def writer(index: int) -> None:
        barrier.wait()
        try:
            verdict, _ = store.record("example.org", 1965, seen(index % 2, index % 2))
            results.append(verdict.value)
        except KeyChanged:
            results.append("refused")

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 16
    assert results.count("first-use") == 1
    assert results.count("refused") == 8
    assert results.count("known") == 7
    pin = store.get("example.org", 1965)
    assert pin is not None
    assert pin.times_seen == 8


EVENT = st.tuples(st.integers(0, 2), st.integers(0, 3), st.booleans())


@settings(max_examples=40, deadline=None)
@given(st.lists(EVENT, max_size=12))
def test_store_follows_the_model(tmp_path_factory, events):
    """Any sequence of connections: the store agrees with a model of TOFU written out here."""
    store = KnownHosts(tmp_path_factory.mktemp("model") / "known.sqlite3")
    key_pin: int | None = None
    cert_pin: int | None = None
    count = 0
    for key, cert, accept in events:
        presented = seen(key, cert)
        accept_key = presented.key_fingerprint if accept else None
        if key_pin is None:
            expected, count = Verdict.FIRST_USE, 1
        elif key == key_pin:
            expected = Verdict.KNOWN if cert == cert_pin else Verdict.RENEWED
            count += 1
        elif accept:
            expected, count = Verdict.KEY_ACCEPTED, 1
        else:
            with pytest.raises(KeyChanged):
                store.record("h", 1965, presented, accept_key=accept_key)
            continue
        key_pin, cert_pin = key, cert
        assert store.record("h", 1965, presented, accept_key=accept_key)[0] is expected
        pin = store.get("h", 1965)
        assert pin is not None
        assert pin.key_fingerprint == f"SHA256:{key_pin:064x}"
        assert pin.cert_fingerprint == f"SHA256:{cert_pin:064x}"
        assert pin.times_seen == count
