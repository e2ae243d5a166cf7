"""The client for plain scripts: the same API without ``await``.

>>> from hospes.client import sync
>>> response = sync.fetch("gemini://example.org/")    # doctest: +SKIP
>>> response.status, response.meta, response.body      # doctest: +SKIP

A :class:`SyncClient` runs its own event loop (:class:`asyncio.Runner`), so
it cannot be used from inside a running loop: use :class:`~hospes.client.Client` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from types import TracebackType
from typing import Any

from ..gemini.url import URL
from .fetch import Client, ClientResponse, IdentityChoice, InputAnswer

__all__ = ["SyncClient", "SyncResponse", "fetch"]


class SyncResponse:
    """A response whose body is read synchronously; attributes as :class:`ClientResponse`."""

    def __init__(self, response: ClientResponse, runner: asyncio.Runner) -> None:
        self.response = response
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.response, name)

    def iter_chunks(self) -> Iterator[bytes]:
        """The body, chunk by chunk."""
        chunks = self.response.chunks()
        try:
            while True:
                chunk = self._runner.run(_next(chunks))
                if chunk is None:
                    return
                yield chunk
        finally:
            self._runner.run(chunks.aclose())

    def read(self) -> bytes:
        """The whole body."""
        return self._runner.run(self.response.read())

    def close(self) -> None:
        """Abandon the body and close the connection."""
        self.response.close()

    def __enter__(self) -> SyncResponse:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


async def _next(chunks: AsyncGenerator[bytes, None]) -> bytes | None:
    """The next chunk, or None at the end (StopAsyncIteration cannot cross Runner.run)."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


class SyncClient:
    """:class:`~hospes.client.Client` for code without an event loop; close it when done."""

    def __init__(self, **options: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("SyncClient cannot run inside an event loop: use Client there")
        self.client = Client(**options)
        self._runner = asyncio.Runner()

    def fetch(
        self,
        url: str | URL,
        *,
        identity: IdentityChoice = None,
        input: InputAnswer = None,
        accept_key: str | None = None,
    ) -> ClientResponse:
        """Fetch ``url`` and read its body into ``response.body``."""
        return self._runner.run(
            self.client.fetch(url, identity=identity, input=input, accept_key=accept_key)
        )

    def open(
        self,
        url: str | URL,
        *,
        identity: IdentityChoice = None,
        input: InputAnswer = None,
        accept_key: str | None = None,
    ) -> SyncResponse:
        """Request ``url``; read the body from the returned response (and close it)."""
        response = self._runner.run(
            self.client.open(url, identity=identity, input=input, accept_key=accept_key)
        )
        return SyncResponse(response, self._runner)

    def close(self) -> None:
        """Close the event loop."""
        self._runner.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def fetch(
    url: str | URL,
    *,
    identity: IdentityChoice = None,
    input: InputAnswer = None,
    accept_key: str | None = None,
    **options: Any,
) -> ClientResponse:
    """Fetch one URL with a client made of ``options`` (see :class:`~hospes.client.Client`)."""
    with SyncClient(**options) as client:
        return client.fetch(url, identity=identity, input=input, accept_key=accept_key)
