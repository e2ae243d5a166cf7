"""CGI: executables under a directory answer the requests under a URL prefix.

The script is the first executable file the path names below the directory
(:meth:`~hospes.app.resolve.Root.executable`, the resolution of static
files, run on the loop's thread pool); the rest of the path is its
``PATH_INFO``.  A script reached through a symlink runs only if the access
rules of where it really is (with the same ``PATH_INFO``) allow the visitor
too (:func:`~hospes.app.resolve.authorise`).  It runs as an asyncio
subprocess (the server never waits on it), in a session and process group of
its own, in its own directory, with an environment built from scratch
(:func:`~hospes.gateways.environment.cgi_environment`) and nothing on its
standard input.

Its first line of output must be a valid Gemini header, or the client gets
42; for 2x the rest is streamed as the body, up to ``max_output`` bytes.  The
whole run has ``timeout`` seconds: then the process group gets SIGTERM, half
a second later SIGKILL, and the client gets 42 (or, once the body has begun,
a truncated response).  Each line the script writes to its standard error
goes to the server's log, escaped.  Every process is waited for: a script
leaves no zombie.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..app.request import Request
from ..app.resolve import Root, authorise
from ..app.response import BodyAborted, Response
from ..gemini.escape import printable
from ..gemini.protocol import Status
from .environment import SAFE_PATH, cgi_environment, resolve_account
from .reply import GatewayError, gateway_failure, read_gateway_header

__all__ = ["DEFAULT_MAX_OUTPUT", "CGIMount", "CGIScripts"]

log = logging.getLogger("hospes.gateways")

DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_TERM_GRACE = 0.5
"""Seconds between SIGTERM and SIGKILL to a script's process group."""
_STDERR_LINES = 100
"""Lines of a run's standard error logged; the rest are counted."""
_STDERR_LINE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class CGIMount:
    """A ``[[cgi]]`` table: executables of ``directory`` answer the requests under ``path``."""

    path: str
    directory: Path
    timeout: float = 10.0
    max_output: int = DEFAULT_MAX_OUTPUT
    max_running: int = 32
    env: Mapping[str, str] = field(default_factory=dict)


class CGIScripts:
    """A handler running the CGI scripts of ``directory`` (mount it at a URL prefix)."""

    uses_accounts = False
    """The account is looked up only for requests that reach a script."""
    accepts_uploads = False

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        timeout: float = 10.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
        max_running: int = 32,
        env: Mapping[str, str] | None = None,
        software: str = "hospes",
    ) -> None:
        self.directory = Path(directory)
        self.root = Root(directory, what="CGI directory")
        if timeout <= 0 or max_output <= 0 or max_running <= 0:
            raise ValueError("timeout, max_output and max_running must be positive")
        self.timeout = timeout
        self.max_output = max_output
        self.max_running = max_running
        self.base = {"PATH": SAFE_PATH, **(env or {}), "SERVER_SOFTWARE": software}
        """The variables every script gets; the request's own are added over them."""
        self.running = 0
        """Scripts running now."""

    @classmethod
    def from_mount(cls, mount: CGIMount, software: str) -> CGIScripts:
        """The handler of a ``[[cgi]]`` table."""
        return cls(
            mount.directory,
            timeout=mount.timeout,
            max_output=mount.max_output,
            max_running=mount.max_running,
            env=mount.env,
            software=software,
        )

    async def __call__(self, request: Request) -> Response:
        """Run the script the request's path names, and answer with what it writes."""
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self.root.executable, request.relative_path)
        if found is None:
            return Response.not_found()
        denied = await authorise(request, request.base + found.path)
        if denied is not None:
            return denied
        if self.running >= self.max_running:
            return Response(
                Status.SERVER_UNAVAILABLE, "too many scripts are running; try again in a moment"
            )
        await resolve_account(request)
        script = found.file.real
        environment = cgi_environment(
            request, self.base, script_name=request.base + found.named, path_info=found.rest
        )
        environment["GEMINI_SCRIPT_FILENAME"] = script
        self.running += 1
        try:
            run = await _Run.start(self, script, environment)
        except OSError as exc:
            self.running -= 1
            log.error("cannot run CGI script %s: %s", script, exc.strerror or exc)
            return gateway_failure("the script cannot be run")
        except BaseException:
            # Cancelled while the script was being started (a deadline, a shutdown):
            # asyncio kills the half-started process; its slot must come back too.
            self.running -= 1
            raise
        return await run.respond()


class _Run:
    """One run of a script: its process, its deadline, its output so far."""

    def __init__(
        self, scripts: CGIScripts, script: str, process: asyncio.subprocess.Process
    ) -> None:
        self.scripts = scripts
        self.script = script
        self.process = process
        self.deadline = asyncio.get_running_loop().time() + scripts.timeout
        self.written = 0
        self.killed = False
        self.finished = False
        assert process.stderr is not None
        self.stderr = asyncio.create_task(_log_stderr(process.stderr, script))

    @classmethod
    async def start(cls, scripts: CGIScripts, script: str, environment: dict[str, str]) -> _Run:
        """Spawn ``script`` in a new session; :class:`OSError` if it cannot be executed."""
        process = await asyncio.create_subprocess_exec(
            script,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=os.path.dirname(script),
            env=environment,
            start_new_session=True,
        )
        return cls(scripts, script, process)

    async def respond(self) -> Response:
        """The script's response: its header, and for 2x its output streamed after it."""
        try:
            status, meta, rest = await read_gateway_header(self._read)
        except TimeoutError:
            await self._kill()
            await self.finish()
            log.warning(
                "CGI script %s wrote no header within %g s: killed",
                self.script,
                self.scripts.timeout,
            )
            return gateway_failure("the script did not answer in time")
        except GatewayError as exc:
            await self._kill()
            await self.finish()
            log.warning("CGI script %s failed: %s", self.script, exc)
            return gateway_failure("the script's response is not a valid Gemini response")
        except BaseException:
            await self._kill()
            await self.finish()
            raise
        if status // 10 == 2:
            return Response(status, meta, _ScriptBody(self, rest))
        # No body for this status: let the script finish (it may still write a file).
        try:
            while await self._read(_CHUNK):
                pass
        except TimeoutError:
            await self._kill()
            log.warning(
                "CGI script %s still ran after %g s: killed", self.script, self.scripts.timeout
            )
        except GatewayError:
            await self._kill()
        finally:
            await self.finish()
        return Response(status, meta)

    async def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes of output before the deadline; counts them against the cap."""
        stdout = self.process.stdout
        assert stdout is not None
        async with asyncio.timeout_at(self.deadline):
            data = await stdout.read(size)
        self.written += len(data)
        if self.written > self.scripts.max_output:
            raise GatewayError(f"it wrote more than {self.scripts.max_output} bytes")
        return data

    async def _kill(self) -> None:
        """SIGTERM to the process group, then SIGKILL: the script and whatever it started."""
        self.killed = True
        pid = self.process.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), _TERM_GRACE)
        # Children that ignored SIGTERM, or outlived the script, are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    async def finish(self) -> None:
        """Wait for the script to exit (killing it at the deadline) and for its stderr."""
        if self.finished:
            return
        self.finished = True
        try:
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(self.process.wait(), max(0.0, self.deadline - loop.time()))
            except TimeoutError:
                log.warning(
                    "CGI script %s still ran after %g s: killed", self.script, self.scripts.timeout
                )
                await self._kill()
                await self.process.wait()
            try:
                await asyncio.wait_for(asyncio.shield(self.stderr), _TERM_GRACE)
            except TimeoutError:
                self.stderr.cancel()
        finally:
            self.scripts.running -= 1


class _ScriptBody:
    """A 2x script's output after its header, streamed; the run ends with the stream."""

    __slots__ = ("_first", "_run")

    def __init__(self, run: _Run, first: bytes) -> None:
        self._run = run
        self._first = first

    def __aiter__(self) -> _ScriptBody:
        return self

    async def __anext__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        run = self._run
        try:
            data = await run._read(_CHUNK)
        except TimeoutError:
            await run._kill()
            await run.finish()
            raise BodyAborted(
                f"CGI script {run.script} still ran after {run.scripts.timeout:g} s: killed"
            ) from None
        except GatewayError as exc:
            await run._kill()
            await run.finish()
            raise BodyAborted(f"CGI script {run.script}: {exc}; killed") from None
        if not data:
            await run.finish()
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        """The response ended early (the client left, a deadline): stop the script."""
        run = self._run
        if not run.finished:
            if run.process.returncode is None:
                await run._kill()
            await run.finish()


async def _log_stderr(stream: asyncio.StreamReader, script: str) -> None:
    """Log each line the script writes to stderr, escaped; at most :data:`_STDERR_LINES`."""
    logged = dropped = 0
    pending = b""
    while True:
        data = await stream.read(_CHUNK)
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        if len(pending) > _STDERR_LINE_LIMIT:
            lines.append(pending)
            pending = b""
        for line in lines:
            if logged < _STDERR_LINES:
                logged += 1
                text = line.decode("utf-8", "replace").rstrip("\r")
                log.warning("CGI script %s: %s", script, printable(text, _STDERR_LINE_LIMIT))
            else:
                dropped += 1
    if pending and logged < _STDERR_LINES:
        log.warning("CGI script %s: %s", script, printable(pending.decode("utf-8", "replace")))
    elif pending:
        dropped += 1
    if dropped:
        log.warning("CGI script %s: %d more lines of stderr not logged", script, dropped)
