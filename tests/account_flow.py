"""The account pages' two steps, as a client goes through them: a plain URL, then its prompt.

Every change on the account pages answers a prompt at a URL with a nonce the
server issued to the certificate (``/account/register`` → ``30
/account/register/<nonce>`` → ``10``): these helpers follow the redirect and
answer.
"""

from __future__ import annotations

from urllib.parse import quote

from helpers import CertFiles, RawResponse, raw_request


def prompt_path(port: int, path: str, cert: CertFiles, *, timeout: float = 10) -> str:
    """Follow ``path`` (``/account/register``) to the path of its prompt (``…/<nonce>``)."""
    start = raw_request(port, f"gemini://localhost:{port}{path}", cert=cert, timeout=timeout)
    assert start.status == 30, start.header
    assert start.meta.startswith(path.split("?", maxsplit=1)[0].rstrip("/") + "/"), start.meta
    return start.meta


def answer(port: int, path: str, cert: CertFiles, text: str, *, timeout: float = 10) -> RawResponse:
    """Go from ``path`` to its prompt and answer it with ``text``."""
    prompt = prompt_path(port, path, cert, timeout=timeout)
    url = f"gemini://localhost:{port}{prompt}?{quote(text)}"
    return raw_request(port, url, cert=cert, timeout=timeout)
