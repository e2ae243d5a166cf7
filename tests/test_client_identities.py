"""Identities: creation, files and modes, import/export, scopes, and ``hospes id``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import assume, given
from hypothesis import strategies as st

from hospes.cli import main
from hospes.client import Identity, IdentityError, IdentityStore, Scope
from hospes.gemini.url import parse_url, quote_path


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-data"
    monkeypatch.setenv("HOSPES_DATA_DIR", str(directory))
    return directory


@pytest.fixture
def store(data_dir: Path) -> IdentityStore:
    return IdentityStore(data_dir / "identities")


# -- scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "path"),
    [
        ("gemini://example.org", "example.org", 1965, "/"),
        ("gemini://Example.ORG:1966/app/", "example.org", 1966, "/app/"),
        ("gemini://[::1]/x", "::1", 1965, "/x"),
        ("gemini://café.example/a%20b/../c", "xn--caf-dma.example", 1965, "/c"),
        # Empty segments are segments (RFC 3986): the scope is what was written.
        ("gemini://example.org//app//x", "example.org", 1965, "//app//x"),
        # One canonical spelling: unreserved characters decoded, the rest encoded one way.
        ("gemini://h/%61pp/caf%c3%a9/é/", "h", 1965, "/app/caf%C3%A9/%C3%A9/"),
        ("gemini://h/a%2fb/%2E%2E/c", "h", 1965, "/c"),
        ("gemini://h/a%2fb/c", "h", 1965, "/a%2Fb/c"),
        ("gemini://h/x/..", "h", 1965, "/"),
        ("gemini://127.1/", "127.0.0.1", 1965, "/"),
    ],
)
def test_scope_parse(text, host, port, path):
    assert Scope.parse(text) == Scope(host, port, path)


@pytest.mark.parametrize(
    "text",
    [
        "http://example.org/",
        "gemini:///path",
        "gemini://example.org/?q",
        "gemini://example.org/#f",
        "gemini://user@example.org/",
        "example.org/path",
        "gemini://example.org/%ff",
    ],
)
def test_scope_parse_rejects(text):
    with pytest.raises(IdentityError, match="invalid scope"):
        Scope.parse(text)


@pytest.mark.parametrize(
    ("scope", "url", "inside"),
    [
        ("gemini://h/app", "gemini://h/app", True),
        ("gemini://h/app", "gemini://h/app/x", True),
        ("gemini://h/app", "gemini://h/apple", False),
        ("gemini://h/app/", "gemini://h/app", True),
        ("gemini://h/app/", "gemini://h/app/x/y?q=1", True),
        ("gemini://h/app/", "gemini://h/app/../x", False),
        ("gemini://h/app/", "gemini://h/%61pp/x", True),
        ("gemini://h/app/", "gemini://h/app%2f..%2fx", False),
        ("gemini://h/app/", "gemini://h/app/%ff", False),
        ("gemini://h/", "gemini://h/anything", True),
        ("gemini://h/", "gemini://h:1966/anything", False),
        ("gemini://h:1965/", "gemini://h/", True),
        ("gemini://h/", "gemini://other/", False),
        ("gemini://h/", "gemini://h.evil/", False),
        ("gemini://h/", "titan://h/", False),
    ],
)
def test_scope_contains(scope, url, inside):
    assert Scope.parse(scope).contains(parse_url(url)) is inside


SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=8
).filter(lambda text: text not in (".", ".."))
PATH = st.lists(SEGMENT, max_size=4).map(lambda parts: "/" + "/".join(parts))


@given(PATH)
def test_scope_text_round_trips(path):
    scope = Scope.parse("gemini://example.org" + quote_path(path))
    assert scope.segments == tuple(filter(None, path.split("/")))
    assert Scope.parse(str(scope)) == scope


@given(PATH, st.lists(SEGMENT, max_size=3), SEGMENT)
def test_scope_covers_its_subtree_and_not_its_siblings(prefix, below, sibling):
    scope = Scope.parse("gemini://example.org" + quote_path(prefix.rstrip("/") + "/"))
    inner = prefix.rstrip("/") + "/" + "/".join(below)
    assert scope.contains(parse_url("gemini://example.org" + quote_path(inner)))
    assume(prefix != "/")  # the root has no siblings
    outside = prefix.rstrip("/") + sibling
    if not (outside + "/").startswith(prefix.rstrip("/") + "/"):
        assert not scope.contains(parse_url("gemini://example.org" + quote_path(outside)))


# -- the store --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_create_writes_private_files(store, kind):
    identity = store.create("alice", kind=kind, common_name="Alice A.", days=30)
    assert identity.common_name == "Alice A."
    assert identity.key_description.split()[0] in ("ECDSA", "Ed25519", "RSA")
    assert stat.S_IMODE(identity.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    key = identity.load_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public == identity.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert identity.scopes == ()
    assert store.names() == ["alice"]


def test_names_are_checked_and_unique(store):
    for name in ["", "../x", "a/b", ".hidden", "x" * 65, "sp ace"]:
        with pytest.raises(IdentityError, match="invalid identity name"):
            store.create(name)
    store.create("alice")
    with pytest.raises(IdentityError, match="already exists"):
        store.create("alice")
    with pytest.raises(IdentityError, match="hospes id new bob"):
        store.get("bob")
    with pytest.raises(IdentityError, match="cannot create the certificate"):
        store.create("long", common_name="x" * 65)
    assert store.names() == ["alice"]


def test_a_key_other_users_can_read_is_refused(store):
    identity = store.create("alice")
    os.chmod(identity.key_path, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        identity.load_key()


def test_scopes_and_choice_of_identity(store):
    store.create("home")
    store.create("work")
    store.add_scope("home", Scope.parse("gemini://example.org/"))
    assert store.add_scope("work", Scope.parse("gemini://example.org/work/")) is True
    assert store.add_scope("work", Scope.parse("gemini://example.org/work/")) is False
    chosen = store.for_url(parse_url("gemini://example.org/work/x"))
    assert chosen is not None
    assert chosen.name == "work"
    chosen = store.for_url(parse_url("gemini://example.org/other"))
    assert chosen is not None
    assert chosen.name == "home"
    assert store.for_url(parse_url("gemini://example.net/")) is None
    assert store.remove_scope("home", None) == 1
    assert store.for_url(parse_url("gemini://example.org/other")) is None


def test_damaged_scope_file_names_the_line(store):
    identity = store.create("alice")
    (store.directory / "alice.scope").write_text("gemini://ok.example/\nnot a url\n")
    with pytest.raises(IdentityError, match="line 2"):
        store.get(identity.name)


def test_export_import_round_trip(store, tmp_path):
    original = store.create("alice", kind="ed25519")
    data = store.export_pem("alice", include_key=True)
    assert b"PRIVATE KEY" in data
    assert b"PRIVATE KEY" not in store.export_pem("alice", include_key=False)
    copy = IdentityStore(tmp_path / "elsewhere").import_pem("alice2", data)
    assert copy.fingerprint == original.fingerprint
    assert copy.key_fingerprint == original.key_fingerprint
    cert_pem = store.export_pem("alice", include_key=False)
    key_pem = data[len(cert_pem) :]
    separate = IdentityStore(tmp_path / "third").import_pem("a", cert_pem, key_pem)
    assert separate.fingerprint == original.fingerprint


def test_import_refuses_a_foreign_key(store):
    one = store.create("one")
    two = store.create("two")
    mixed = (
        store.export_pem(one.name, include_key=False)
        + store.export_pem(two.name, include_key=True)[
            len(store.export_pem(two.name, include_key=False)) :
        ]
    )
    with pytest.raises(IdentityError, match="does not belong"):
        store.import_pem("three", mixed)
    with pytest.raises(IdentityError, match="no PEM certificate"):
        store.import_pem("three", b"garbage")
    assert "three" not in store.names()


def test_delete(store):
    store.create("alice")
    store.add_scope("alice", Scope.parse("gemini://example.org/"))
    store.delete("alice")
    assert store.names() == []
    assert list(store.directory.iterdir()) == []
    with pytest.raises(IdentityError):
        store.delete("alice")


def test_identity_properties(store):
    identity: Identity = store.create("alice", days=2)
    assert identity.fingerprint.startswith("SHA256:")
    assert identity.fingerprint != identity.key_fingerprint
    assert identity.match(parse_url("gemini://example.org/")) is None


# -- hospes id ------------------------------------------------------------------------------


def test_cli_lifecycle(data_dir, tmp_path, capsys):
    assert main(["id", "list"]) == 0
    assert "no identities" in capsys.readouterr().err
    assert main(["id", "new", "alice", "--cn", "Alice", "--days", "10", "--key", "ed25519"]) == 0
    assert main(["id", "new", "alice"]) == 2
    assert main(["id", "new", "bad/name"]) == 2
    assert main(["id", "new", "zero", "--days", "0"]) == 2
    assert main(["id", "scope", "alice", "gemini://example.org/app/"]) == 0
    assert main(["id", "scope", "alice", "http://example.org/"]) == 2
    capsys.readouterr()
    assert main(["id", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["NAME", "KEY", "VALID", "SCOPES", "CERTIFICATE"]
    assert listing[1].startswith("alice  Ed25519 (256 bits)  until ")
    assert listing[1].endswith(store_fingerprint("alice"))
    assert listing[3].split() == ["SCOPE", "SENT", "NOTE"]
    assert listing[4].split() == ["gemini://example.org/app/", "alice"]
    assert main(["id", "show", "alice"]) == 0
    shown = capsys.readouterr().out
    assert "common name      Alice" in shown
    assert "Ed25519" in shown
    assert "scopes           gemini://example.org/app/" in shown

    exported = tmp_path / "alice.pem"
    assert main(["id", "export", "alice", "-o", str(exported)]) == 0
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert main(["id", "export", "alice", "-o", str(exported)]) == 1  # never overwrites
    assert main(["id", "import", "copy", str(exported)]) == 0
    assert main(["id", "import", "broken", str(tmp_path / "missing.pem")]) == 2

    assert main(["id", "unscope", "alice", "gemini://example.org/app/"]) == 0
    assert main(["id", "unscope", "alice", "gemini://example.org/app/"]) == 1
    assert main(["id", "delete", "alice"]) == 2  # no terminal to confirm on: needs --yes
    assert main(["id", "delete", "alice", "--yes"]) == 0
    capsys.readouterr()
    assert main(["id", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("copy  Ed25519")


def store_fingerprint(name: str) -> str:
    return IdentityStore(Path(os.environ["HOSPES_DATA_DIR"]) / "identities").get(name).fingerprint


def test_cli_export_to_stdout(data_dir, capsys):
    assert main(["id", "new", "alice"]) == 0
    capsys.readouterr()
    assert main(["id", "export", "alice", "--cert-only"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in out


def test_data_dir_may_come_before_or_after_the_action(tmp_path, capsys):
    """``hospes id --data-dir D new x`` and ``hospes id new x --data-dir D`` name the same place."""
    before, after = tmp_path / "before", tmp_path / "after"
    assert main(["id", "--data-dir", str(before), "new", "bob"]) == 0
    assert main(["id", "new", "carol", "--data-dir", str(after)]) == 0
    assert main(["known-hosts", "--data-dir", str(before), "list"]) == 0
    capsys.readouterr()
    assert main(["id", "--data-dir", str(before), "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert "bob" in listed
    assert "carol" not in listed
    assert main(["id", "--data-dir", str(before), "list", "--data-dir", str(after)]) == 0
    listed = capsys.readouterr().out
    assert "carol" in listed
    assert "bob" not in listed
