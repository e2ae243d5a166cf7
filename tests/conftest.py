"""Shared fixtures: certificates made in the test, and real hospes servers over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import RUNNERS, CertFactory, RunningServer, start_server
from hospes.app.routing import Handler


@pytest.fixture(autouse=True)
def _one_event_loop_per_test() -> Iterator[None]:
    """The loop ``helpers.run`` uses for the whole test (created only if the test uses it)."""
    with asyncio.Runner() as runner:
        RUNNERS.append(runner)
        try:
            yield
        finally:
            RUNNERS.remove(runner)


@pytest.fixture
def certs(tmp_path: Path) -> CertFactory:
    directory = tmp_path / "client-certs"
    directory.mkdir()
    return CertFactory(directory)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with ``serve(handler, config=..., limits=...)``; stopped after the test."""
    running: list[RunningServer] = []

    def factory(handler: Handler | None = None, **kwargs: object) -> RunningServer:
        state = tmp_path / f"state-{len(running)}"
        server = start_server(state, handler, **kwargs)  # type: ignore[arg-type]
        running.append(server)
        return server

    yield factory
    for server in running:
        server.stop()


@pytest.fixture
def demo(serve: Callable[..., RunningServer]) -> RunningServer:
    """The bundled demo capsule on a free port."""
    return serve()
