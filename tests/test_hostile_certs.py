"""Hostile certificates and names against a real server: control characters, bidi overrides,
huge names, many-megabyte chains.  Nothing raw may reach the access log, the server's log
or a page, and a huge chain costs the server a dropped handshake, nothing more.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import unicodedata
from pathlib import Path

import pytest

from helpers import CertFiles
from hostile import (
    client_context,
    connect,
    odd_certificate_files,
    open_fds,
    request,
    wait_for,
)

EVIL = "evil\r\n20 text/gemini\r\n\x1b[2J\x1b]0;pwned\x07\u202eeman\u2066\x00end"
UNSAFE = {"Cc", "Cf", "Zl", "Zp"}


def unsafe_characters(text: str, allowed: str = "") -> set[str]:
    return {char for char in text if unicodedata.category(char) in UNSAFE and char not in allowed}


@pytest.mark.parametrize("common_name", [EVIL, EVIL * 300], ids=["controls", "huge"])
def test_hostile_common_name_never_appears_raw(demo, tmp_path, caplog, common_name):
    caplog.set_level(logging.DEBUG)
    cert = odd_certificate_files(tmp_path, common_name)
    me = request(demo.port, demo.url("/me"), cert=cert)
    assert me.status == 20
    assert not unsafe_characters(me.header)
    assert not unsafe_characters(me.body.decode(), allowed="\n")
    shown = next(line for line in me.body.decode().splitlines() if "common name" in line)
    assert "evil\\x0d\\x0a20 text/gemini" in shown
    assert len(shown) < 200  # cut, however long the name
    # The account pages offer, list and greet by name: register and look.
    start = request(demo.port, demo.url("/account/register"), cert=cert)
    assert start.status == 30
    prompt = request(demo.port, demo.url(start.meta), cert=cert)
    assert prompt.status == 10
    assert not unsafe_characters(prompt.meta)
    created = request(demo.port, demo.url(f"{start.meta}?mallory"), cert=cert)
    assert created.status in (20, 30, 31), created.header
    listing = request(demo.port, demo.url("/account/certificates"), cert=cert)
    assert listing.status == 20
    assert "evil\\x0d\\x0a" in listing.body.decode()
    assert not unsafe_characters(listing.body.decode(), allowed="\n")
    assert wait_for(lambda: len(demo.log_lines) >= 4)
    for line in demo.log_lines:
        assert not unsafe_characters(line), line
    for record in caplog.records:
        assert not unsafe_characters(record.getMessage(), allowed="\n"), record.getMessage()


@pytest.mark.parametrize(
    "line",
    [
        b"gemini://localhost:PORT/%1b%5b31m%0d%0a20%20fake\r\n",
        b"gemini://localhost:PORT/\x1b[31mred\r\n",
        b"gemini://localhost:PORT/\xe2\x80\xaeevil\r\n",
        b"gemini://localhost:PORT/?%0d%0a%1b]0;title%07\r\n",
    ],
)
def test_hostile_urls_are_escaped_in_the_access_log_and_the_meta(demo, line):
    line = line.replace(b"PORT", str(demo.port).encode())
    response = request(demo.port, line)
    assert response.status in (51, 59)
    assert not unsafe_characters(response.header)
    assert wait_for(lambda: len(demo.log_lines) >= 1)
    assert not unsafe_characters(demo.log_lines[-1])


def huge_chain(directory: Path, megabytes: int) -> CertFiles:
    """A client certificate followed by ``megabytes`` one-MiB padded certificates in its chain."""
    leaf = odd_certificate_files(directory, "chain")
    padding = odd_certificate_files(directory, "padding", extra=b"\xaa" * (1024 * 1024))
    chain = leaf.cert.read_bytes() + padding.cert.read_bytes() * megabytes
    path = directory / "chain.pem"
    path.write_bytes(chain)
    return CertFiles(path, leaf.key, leaf.private_key)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_many_megabyte_certificate_chain_is_dropped_without_harm(serve, tmp_path, version):
    server = serve()
    chain = huge_chain(tmp_path, 8)
    assert chain.cert.stat().st_size > 8 * 1024 * 1024
    assert request(server.port, server.url("/")).status == 20
    before = open_fds()
    for _ in range(3):
        context = client_context(chain)
        context.maximum_version = version
        with (
            contextlib.closing(connect(server.port)) as sock,
            pytest.raises((ssl.SSLError, OSError)),
        ):
            tls = context.wrap_socket(sock, server_hostname="localhost")
            tls.sendall(server.url("/me").encode() + b"\r\n")
            assert tls.recv(100) == b"", "a huge chain must not be accepted"
        assert request(server.port, server.url("/")).status == 20
    assert wait_for(lambda: server.server.connection_count == 0)
    assert wait_for(lambda: open_fds() == before)
    assert server.server.stats.dropped["tls_error"] == 3
    assert server.server.stats.responses[20] == 4
