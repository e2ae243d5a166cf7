"""Reference server: the straightforward pyOpenSSL + uvloop Gemini responder (memory BIOs).

An asyncio Protocol feeds received bytes into a memory BIO and writes what
OpenSSL produces; every client certificate is accepted; one fixed response.
This is what "a bare pyOpenSSL + uvloop responder" usually looks like, with
no features at all: the floor hospes must beat while doing real work.
Usage: python reference_bio.py PORT CERT KEY [--no-ticket]

``--no-ticket`` sets ``OP_NO_TICKET``: TLS 1.3 then issues stateful tickets
(a session id into the server's cache) instead of encrypting the whole
session, client certificate included, into every ticket; hospes does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import uvloop
from OpenSSL import SSL

RESPONSE = b"20 text/gemini\r\n# hello\n"


def context(cert: str, key: str, *, no_ticket: bool = False) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    if no_ticket:
        ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_certificate_chain_file(cert)
    ctx.use_privatekey_file(key)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, lambda *args: True)
    ctx.set_session_id(b"reference")
    return ctx


class Responder(asyncio.Protocol):
    def __init__(self, ctx: SSL.Context) -> None:
        self.tls = SSL.Connection(ctx, None)
        self.tls.set_accept_state()
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        tls = self.tls
        tls.bio_write(data)
        try:
            tls.do_handshake()
            while b"\r\n" not in self.buffer:
                self.buffer += tls.recv(2048)
            tls.sendall(RESPONSE)
            tls.shutdown()
            self.flush()
            self.transport.close()
        except SSL.WantReadError:
            self.flush()
        except SSL.Error:
            self.flush()
            self.transport.close()

    def flush(self) -> None:
        with contextlib.suppress(SSL.WantReadError):
            self.transport.write(self.tls.bio_read(65536))


async def main(port: int, cert: str, key: str, no_ticket: bool) -> None:
    ctx = context(cert, key, no_ticket=no_ticket)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Responder(ctx), "127.0.0.1", port, backlog=4096)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)  # port 0: the one it got
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], "--no-ticket" in sys.argv[4:]))
