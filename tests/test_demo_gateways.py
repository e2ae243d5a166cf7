"""The demo capsule's gateways: a CGI guestbook signed by certificates, a page members edit."""

from __future__ import annotations

from urllib.parse import quote

from account_flow import answer
from helpers import raw_request


def get(server, path: str, cert=None):
    return raw_request(server.port, f"gemini://localhost:{server.port}{path}", cert=cert)


def put(server, path: str, body: bytes, cert=None):
    line = f"titan://localhost:{server.port}{path};size={len(body)}\r\n".encode()
    return raw_request(server.port, line + body, cert=cert)


def test_the_guestbook_is_signed_by_certificates(demo, certs):
    page = get(demo, "/cgi-bin/guestbook")
    assert (page.status, page.meta) == (20, "text/gemini")
    assert b"Nobody has signed yet" in page.body
    assert get(demo, "/cgi-bin/guestbook/sign?hello").status == 60  # no anonymous entries
    alice = certs.make("alice")
    assert get(demo, "/cgi-bin/guestbook/sign", alice).status == 10
    signed = get(demo, "/cgi-bin/guestbook/sign?" + quote("Hello,\nworld! => /x"), alice)
    assert (signed.status, signed.meta) == (30, "/cgi-bin/guestbook")
    body = get(demo, "/cgi-bin/guestbook").body.decode()
    assert "### alice, " in body
    assert "> Hello, world! => /x\n" in body  # one quoted line: no link smuggled in
    assert (demo.state / "demo" / "guestbook.gmi").exists()
    assert get(demo, "/cgi-bin/guestbook/sign?x", certs.expired()).status == 62


def test_members_edit_the_wiki_page_with_titan(demo, certs):
    page = get(demo, "/wiki/")
    assert page.status == 20
    assert b"# The members' page" in page.body
    frank = certs.make("frank")
    assert put(demo, "/wiki/index.gmi", b"# Vandalised\n").status == 60
    assert put(demo, "/wiki/index.gmi", b"# Vandalised\n", frank).status == 61
    assert answer(demo.port, "/account/register", frank, "frank").status == 30
    written = put(demo, "/wiki/index.gmi", b"# Frank's page\n", frank)
    assert (written.status, written.meta) == (
        30,
        f"gemini://localhost:{demo.port}/wiki/index.gmi",
    )
    assert get(demo, "/wiki/").body == b"# Frank's page\n"
