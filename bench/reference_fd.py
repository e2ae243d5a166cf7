"""Reference server: pyOpenSSL + uvloop with OpenSSL driving the socket itself (no BIO copies).

The fastest minimal responder we know how to write in Python: non-blocking
sockets handed to OpenSSL, one reader callback per connection, batch
accepts, a fixed response.  It reads the client certificate (as any Gemini
server must) but does nothing with it.  hospes is measured against it to see
what its features cost.  Usage: python reference_fd.py PORT CERT KEY [--no-ticket]
(``--no-ticket``: stateful TLS 1.3 tickets, as in reference_bio.py).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import uvloop
from OpenSSL import SSL

from reference_bio import RESPONSE, context


class Connection:
    __slots__ = ("buffer", "fd", "loop", "sock", "tls")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, ctx: SSL.Context, sock: socket.socket
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.tls = SSL.Connection(ctx, sock)
        self.tls.set_accept_state()
        self.buffer = b""
        loop.add_reader(self.fd, self.step)

    def step(self) -> None:
        tls = self.tls
        try:
            tls.do_handshake()
            while b"\r\n" not in self.buffer:
                self.buffer += tls.recv(2048)
            tls.get_peer_certificate()
            tls.sendall(RESPONSE)
            tls.shutdown()
        except SSL.WantReadError:
            return
        except SSL.Error:
            pass
        self.loop.remove_reader(self.fd)
        self.sock.close()


async def main(port: int, cert: str, key: str, no_ticket: bool) -> None:
    ctx = context(cert, key, no_ticket=no_ticket)
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)  # port 0: the one it got

    def accept() -> None:
        for _ in range(64):
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            Connection(loop, ctx, sock).step()

    loop.add_reader(listener.fileno(), accept)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], "--no-ticket" in sys.argv[4:]))
