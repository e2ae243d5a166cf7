"""The file-serving options, per host, over real TLS: access rules for one host, lang, charset,
[mime], listings, redirects and the account pages mounted from the configuration alone."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import RawResponse, RunningServer, raw_request
from hospes.app.access import AccessPolicy, AccessRule, Requirement
from hospes.app.listing import MAX_ENTRIES, ListingEntry, human_size, render_listing
from hospes.app.redirects import RedirectRule, Redirects, redirect_chain
from hospes.app.static import StaticFiles
from hospes.config import parse_config
from hospes.runner import ByHost, build_handler

A, B = "a.test", "b.test"


def get(
    server: RunningServer, path: str, host: str = A, cert=None, *, raw: bool = False
) -> RawResponse:
    url = path if raw else f"gemini://{host}:{server.port}{path}"
    return raw_request(server.port, url, server_name=host, cert=cert)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "capsule"
    (root / "private").mkdir(parents=True)
    (root / "members").mkdir()
    (root / "old").mkdir()
    (root / "index.gmi").write_text("# Home\n")
    (root / "private" / "index.gmi").write_text("# Private\n")
    (root / "members" / "index.gmi").write_text("# Members\n")
    (root / "notes.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data.dat").write_bytes(b"\x00\x01")
    (root / "README").write_text("no extension\n")
    return root


def register(server: RunningServer, mount: str, host: str, cert, name: str = "") -> RawResponse:
    """Register through the mount's pages: the start page sends to a prompt made for ``cert``."""
    start = get(server, f"{mount}register", host, cert)
    assert start.status == 30, start.header
    assert start.meta.startswith(f"{mount}register/"), start.meta
    return get(server, f"{start.meta}?{urllib.parse.quote(name)}", host, cert)


def config_of(root: Path, **raw: object):
    return parse_config({"hostnames": [A, B], "root": str(root), **raw})


# -- access rules for one host ----------------------------------------------------------------


def test_an_access_rule_can_protect_one_host_only(serve, root, certs):
    server = serve(
        config=config_of(root, access=[{"path": "/private/", "require": "certificate", "host": A}])
    )
    assert get(server, "/private/", A).status == 60
    assert get(server, "/private/", A, certs.make()).body == b"# Private\n"
    assert get(server, "/private/", B).body == b"# Private\n"
    # Matched on the canonical decoded path, as every rule is: no spelling gets around it.
    assert get(server, "/%70rivate/", A).status == 60
    assert get(server, "/private", A).status == 60


def test_a_host_rule_beats_a_rule_for_every_host_at_the_same_path(serve, root, certs):
    fingerprint = "SHA256:" + "ab" * 32
    server = serve(
        config=config_of(
            root,
            access=[
                {"path": "/private/", "require": "certificate"},
                {
                    "path": "/private/",
                    "require": "allowlist",
                    "fingerprints": [fingerprint],
                    "host": [B],
                },
            ],
        )
    )
    alice = certs.make()
    assert get(server, "/private/", A, alice).status == 20
    refused = get(server, "/private/", B, alice)
    assert refused.status == 61
    assert "allow-list" in refused.meta


def test_access_policy_per_host():
    everywhere = AccessRule("/p/", Requirement.CERTIFICATE)
    only_b = AccessRule("/p/", Requirement.ACCOUNT, hosts=frozenset({B}))
    longer_a = AccessRule("/p/q/", Requirement.CERTIFICATE, hosts=frozenset({A}))
    policy = AccessPolicy([only_b, everywhere, longer_a], register_urls={B: "/account/register"})
    assert policy.rule_for("/p/x", A) is everywhere
    assert policy.rule_for("/p/q/x", A) is longer_a
    assert policy.rule_for("/p/q/x", B).require is Requirement.ACCOUNT
    assert policy.rule_for("/p/x", B).register_url == "/account/register"
    assert policy.rule_for("/p/x", "c.test") is everywhere
    assert policy.rule_for("/p/x") is everywhere


# -- lang, charset, [mime] --------------------------------------------------------------------


def test_lang_charset_and_mime_per_host_the_host_winning(serve, root):
    server = serve(
        config=config_of(
            root,
            lang="en",
            mime={".dat": "application/x-data"},
            hosts={B: {"lang": "fr", "charset": "iso-8859-1", "mime": {"txt": "text/x-notes"}}},
        )
    )
    assert get(server, "/", A).meta == "text/gemini; lang=en"
    assert get(server, "/notes.txt", A).meta == "text/plain"
    assert get(server, "/data.dat", A).meta == "application/x-data"
    assert get(server, "/image.png", A).meta == "image/png"
    assert get(server, "/README", A).meta == "application/octet-stream"

    assert get(server, "/", B).meta == "text/gemini; charset=iso-8859-1; lang=fr"
    notes = get(server, "/notes.txt", B)
    assert notes.meta == "text/x-notes; charset=iso-8859-1"
    assert notes.body.decode("iso-8859-1") == "café\n"
    assert get(server, "/data.dat", B).meta == "application/x-data"  # the top-level table too
    assert get(server, "/image.png", B).meta == "image/png"  # no charset on binary types


def test_mime_table_replaces_a_built_in_type(tmp_path):
    (tmp_path / "page.gmi").write_text("x")
    static = StaticFiles(tmp_path, mime={".GMI": "text/plain", ".log": "text/x-log"})
    assert static.mime_of("page.gmi") == "text/plain"
    assert static.mime_of("PAGE.GMI") == "text/plain"
    assert static.mime_of("server.log") == "text/x-log"
    assert static.mime_of("a.md") == "text/markdown"
    own = StaticFiles(tmp_path, mime={".txt": "text/plain; charset=utf-8"}, charset="latin-1")
    assert own.mime_of("a.txt") == "text/plain; charset=utf-8"  # the table's own charset stays
    # What could not go in a header fails where it is given, not in each response.
    with pytest.raises(ValueError, match="control character"):
        StaticFiles(tmp_path, lang="en\r\n20 text/html")
    with pytest.raises(ValueError, match="MIME type"):
        StaticFiles(tmp_path, mime={".x": "nonsense"})


def test_hosts_with_the_same_settings_share_one_handler(root, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    same = build_handler(config_of(root), None)
    assert isinstance(same, StaticFiles)  # no per-host indirection for one capsule
    split = build_handler(config_of(root, hosts={B: {"root": str(other)}}), None)
    assert isinstance(split, ByHost)
    assert split.handlers[A] is not split.handlers[B]
    three = parse_config(
        {"hostnames": [A, B, "c.test"], "root": str(root), "hosts": {"c.test": {"lang": "de"}}}
    )
    handler = build_handler(three, None)
    assert isinstance(handler, ByHost)
    assert handler.handlers[A] is handler.handlers[B] is not handler.handlers["c.test"]


# -- listings ---------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "a\nb.gmi",
    "=> gemini:evil.example click.gmi",
    "# heading.txt",
    "```",
    "\u202egnp.exe",
    "  spaced",
    "50% off?.txt",
    "colon:name",
    "#",
    "*",
    "\r",
    "ok.gmi",
]


@pytest.fixture
def listed(tmp_path: Path) -> Path:
    root = tmp_path / "listed"
    files = root / "files"
    (files / "sub").mkdir(parents=True)
    (root / "index.gmi").write_text("# has an index\n")
    for index, name in enumerate(HOSTILE_NAMES):
        (files / name).write_bytes(b"x" * (index + 1))
    (files / "big.bin").write_bytes(b"\0" * 3000)
    (files / ".hidden").write_text("secret")
    (files / "sub" / "inner.gmi").write_text("# inner\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (files / "escape.txt").symlink_to(outside / "secret.txt")
    (files / "escape-dir").symlink_to(outside, target_is_directory=True)
    os.mkfifo(files / "pipe")
    os.close(os.open(os.fsencode(files) + b"/latin-\xe9", os.O_CREAT | os.O_WRONLY, 0o644))
    (root / "empty").mkdir()
    return root


def links(body: str) -> list[tuple[str, str]]:
    return [
        (line[3:].split(" ", 1)[0], line[3:].split(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("=> ")
    ]


def test_listing_shows_what_can_be_opened_and_no_name_bends_the_gemtext(serve, listed):
    server = serve(config=parse_config({"root": str(listed), "listing": True, "lang": "en"}))
    page = raw_request(server.port, f"gemini://localhost:{server.port}/files/")
    assert page.status == 20
    assert page.meta == "text/gemini; lang=en"
    body = page.body.decode()
    lines = body.splitlines()
    assert lines[0] == "# /files/"
    # Every other line is a link this module wrote, or empty: no heading, list item,
    # quote or preformatting toggle came from a name.
    assert all(line == "" or line.startswith("=> ") for line in lines[1:]), lines
    found = links(body)
    assert found[0] == ("../", "../")
    shown = [label for _, label in found[1:]]
    assert "sub/" in shown
    assert "big.bin  (2.9 KiB)" in shown
    assert "ok.gmi  (12 B)" in shown
    assert not any(word in body for word in ("hidden", "escape", "pipe", "latin"))
    assert "a\\x0ab.gmi  (1 B)" in shown
    assert "\\u202egnp.exe  (5 B)" in shown
    assert "\u202e" not in body and "\r" not in body
    names = [urllib.parse.unquote(url.removeprefix("./").removesuffix("/")) for url, _ in found[1:]]
    assert names == sorted(names)
    # Every link leads to what it names.
    assert set(names) == {*HOSTILE_NAMES, "big.bin", "sub"}
    for url, _ in found[1:]:
        target = urllib.parse.urljoin(f"http://x/files/{''}", url)
        path = urllib.parse.urlsplit(target).path
        response = raw_request(server.port, f"gemini://localhost:{server.port}{path}")
        assert response.status == 20, (url, response.header)


def test_listing_is_off_by_default_and_an_index_wins(serve, listed):
    off = serve(config=parse_config({"root": str(listed)}))
    assert raw_request(off.port, f"gemini://localhost:{off.port}/files/").status == 51
    on = serve(config=parse_config({"root": str(listed), "listing": True}))
    home = raw_request(on.port, f"gemini://localhost:{on.port}/")
    assert home.body == b"# has an index\n"
    empty = raw_request(on.port, f"gemini://localhost:{on.port}/empty/")
    assert "This directory is empty." in empty.body.decode()
    assert raw_request(on.port, f"gemini://localhost:{on.port}/empty").status == 31


# What scan_directory passes on: no '/' or NUL (no file system has them), no lone surrogates
# (names that are not UTF-8, which cannot be requested, are left out before).
FILE_NAMES = st.text(
    st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)


@given(st.lists(FILE_NAMES, max_size=20, unique=True))
def test_no_name_can_start_a_line_of_its_own(names):
    # splitlines() splits on more than gemtext's LF (CR, VT, FF, U+2028...): stricter still.
    entries = [ListingEntry(name, directory=len(name) % 2 == 0, size=len(name)) for name in names]
    body = render_listing("/dir\n# x/", entries)
    lines = body.splitlines()
    assert body.endswith("\n")
    assert lines[0].startswith("# /dir")
    assert lines[1] == ""
    rest = lines[2:]
    assert all(line.startswith("=> ./") or line == "This directory is empty." for line in rest[1:])
    assert len(rest) == 1 + max(len(names), 1)
    for (url, _), entry in zip(links(body)[1:], entries, strict=True):
        assert " " not in url
        assert urllib.parse.unquote(url[2:].removesuffix("/")) == entry.name


def test_a_huge_directory_is_cut():
    entries = [ListingEntry(f"f{i:05}", directory=False) for i in range(MAX_ENTRIES + 3)]
    body = render_listing("/", entries, parent=False)
    assert body.count("\n=> ") == MAX_ENTRIES
    assert body.endswith("and 3 more, not shown\n")


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (50 * 1024**2, "50 MiB")],
)
def test_human_size(size, shown):
    assert human_size(size) == shown


# -- redirects --------------------------------------------------------------------------------


def test_redirects_before_access_rules_and_files(serve, root):
    (root / "old" / "page.gmi").write_text("# the old page, still on disk\n")
    server = serve(
        config=config_of(
            root,
            access=[{"path": "/old/", "require": "certificate"}],
            redirect=[
                {"from": "/old/", "to": "/new/"},
                {"from": "/old/keep.gmi", "to": "/kept.gmi", "status": 30},
                {"from": "/old/deep/", "to": "gemini://elsewhere.example/deep/"},
                {"from": "/gone", "status": 52},
                {"from": "/café/", "to": "/menu/", "host": B},
            ],
        )
    )
    # Prefix: the rest of the path follows, the query too, and no certificate is asked for.
    assert get(server, "/old/page.gmi").header == "31 /new/page.gmi"
    assert get(server, "/old/a%20b/?q=1").header == "31 /new/a%20b/?q=1"
    assert get(server, "/old").header == "31 /new/"
    assert get(server, "/old/").header == "31 /new/"
    # Exact beats prefix; the longest prefix wins.
    assert get(server, "/old/keep.gmi").header == "30 /kept.gmi"
    assert get(server, "/old/deep/x.gmi").header == "31 gemini://elsewhere.example/deep/x.gmi"
    assert get(server, "/gone").header == "52 gone"
    assert get(server, "/gone/child").status == 51  # exact: only the path itself
    # Per host, matched on the decoded path.
    assert get(server, "/caf%C3%A9/x", B).header == "31 /menu/x"
    assert get(server, "/caf%C3%A9/x", A).status == 51
    assert get(server, "/private/").status == 20


def test_redirect_table_order_and_targets():
    table = Redirects(
        [
            RedirectRule("/a/", "/x/"),
            RedirectRule("/a/b/", "/y/", hosts=frozenset({A})),
            RedirectRule("/a/b/", "/z/"),
            RedirectRule("/a/b/c", "/exact", exact=True),
            RedirectRule("/s p/", "/d é/"),
        ]
    )
    assert table.find(A, "/a/b/q").target == "/y/"
    assert table.find(B, "/a/b/q").target == "/z/"
    assert table.find(B, "/a/q").target == "/x/"
    assert table.find(B, "/a/b/c").target == "/exact"
    assert table.find(B, "/a/b/c/d").target == "/z/"
    assert table.find(B, "/ab") is None
    assert table.response(B, "/s p/ü").meta == "/d%20%C3%A9/%C3%BC"
    assert table.response(B, "/a/q", "x=%20").meta == "/x/q?x=%20"
    assert not Redirects()
    with pytest.raises(ValueError, match="need a target"):
        RedirectRule("/a/", None, 31)
    with pytest.raises(ValueError, match="30, 31 or 52"):
        RedirectRule("/a/", "/b/", 32)


def test_redirect_chains_that_clients_cannot_finish_are_found():
    assert redirect_chain([RedirectRule("/a/", "/b/"), RedirectRule("/b/", "/c/")]) is None
    assert redirect_chain([RedirectRule("/a/", "/b/"), RedirectRule("/b/", "/a/")]) == [
        "/a/",
        "/b/",
        "/a/",
    ]
    # On different hosts, the same two are no loop.
    assert (
        redirect_chain(
            [
                RedirectRule("/a/", "/b/", hosts=frozenset({A})),
                RedirectRule("/b/", "/a/", hosts=frozenset({B})),
            ]
        )
        is None
    )
    long = [RedirectRule(f"/{i}/", f"/{i + 1}/") for i in range(6)]
    assert redirect_chain(long) == [f"/{i}/" for i in range(7)]
    assert redirect_chain(long[:5]) is None


# -- the account pages, mounted by the configuration -------------------------------------------


def test_account_pages_without_code(serve, root, certs):
    server = serve(
        config=config_of(
            root,
            accounts={"mount": "/account/", "members_url": "/members/"},
            access=[{"path": "/members/", "require": "account"}],
            hosts={B: {"accounts": {"mount": "/konto"}}},
        )
    )
    alice = certs.make("alice")
    refused = get(server, "/members/", A, alice)
    assert refused.status == 61
    assert refused.meta.endswith("register at /account/register")
    assert register(server, "/account/", A, alice).header == "30 /members/"
    assert get(server, "/members/", A, alice).body == b"# Members\n"
    # The files around the mount are served as before.
    assert get(server, "/").body == b"# Home\n"
    # Host b has its own mount, and its 61 points there; it sends members to its own page.
    bob = certs.make("bob")
    assert get(server, "/members/", B, bob).meta.endswith("register at /konto/register")
    assert get(server, "/account/register", B, bob).status == 51
    assert register(server, "/konto/", B, bob).header == "30 /members/"


def test_without_the_key_nothing_is_mounted(serve, root, certs, caplog):
    server = serve(config=config_of(root, access=[{"path": "/members/", "require": "account"}]))
    alice = certs.make("alice")
    refused = get(server, "/members/", A, alice)
    assert refused.status == 61
    assert "register" not in refused.meta
    assert get(server, "/account/register", A, alice).status == 51
    assert any("nobody can register" in record.getMessage() for record in caplog.records)


def test_a_host_can_turn_the_mount_off(serve, root, certs):
    server = serve(
        config=config_of(
            root, accounts={"mount": "/account/"}, hosts={B: {"accounts": {"mount": False}}}
        )
    )
    alice = certs.make("alice")
    assert get(server, "/account/register", B, alice).status == 51
    # Without members_url, registering leads to the account page itself.
    assert register(server, "/account/", A, alice).header == "30 /account/"
    assert re.search(r"# alice", get(server, "/account/", A, alice).body.decode())


def test_host_rules_apply_where_a_symlink_leads_and_to_listings(serve, root, certs):
    (root / "private" / "secret.gmi").write_text("# secret\n")
    (root / "latest.gmi").symlink_to("private/secret.gmi")
    (root / "members-area").symlink_to("private", target_is_directory=True)
    (root / "files").mkdir()
    (root / "files" / "plain.txt").write_text("plain\n")
    (root / "files" / "link.gmi").symlink_to("../private/secret.gmi")
    server = serve(
        config=config_of(
            root,
            listing=True,
            access=[{"path": "/private/", "require": "certificate", "host": A}],
        )
    )
    alice = certs.make()
    # On a.test the rule of /private/ follows the symlinks; on b.test there is none.
    assert get(server, "/latest.gmi", A).status == 60
    assert get(server, "/latest.gmi", A, alice).body == b"# secret\n"
    assert get(server, "/latest.gmi", B).body == b"# secret\n"
    (root / "private" / "index.gmi").unlink()  # so the directories are listed
    assert get(server, "/members-area/", A).status == 60
    assert "secret.gmi" in get(server, "/members-area/", A, alice).body.decode()
    assert "secret.gmi" in get(server, "/members-area/", B).body.decode()
    # A listing shows an entry leading into /private/ only to who may open it.
    anonymous = get(server, "/files/", A).body.decode()
    assert "plain.txt" in anonymous
    assert "link.gmi" not in anonymous
    assert "link.gmi" in get(server, "/files/", A, alice).body.decode()
    assert "link.gmi" in get(server, "/files/", B).body.decode()
