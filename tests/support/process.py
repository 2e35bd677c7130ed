"""Real processes for tests: `python run.py` and `redis-server`, each on a free
port, started as asyncio subprocesses and stopped the way production stops them
(SIGTERM). Their output is collected so a failure can show it, and passed on
to the logger `cyberhub.process.<name>`, so that checks over the test run's
logs (such as the secret scan in conftest.py) cover child processes too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
START_LIMIT = 30.0  # seconds; start-up normally takes well under one
STOP_LIMIT = 60.0

# Settings the child must not inherit from the developer's or CI's environment:
# a test says exactly what it wants. MONGODB_URI is kept on purpose (the suite
# runs against a real MongoDB when it is set).
_INHERITED_SETTINGS = {
    "ENVIRONMENT", "HOST", "PORT", "MONGODB_DB", "JWT_SECRET", "PAYMENT_WEBHOOK_SECRET", "ADMIN_USERNAME",
    "ADMIN_PASSWORD", "CORS_ORIGINS", "REDIS_URL", "LOG_LEVEL", "LOG_FORMAT", "CURRENCY",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def refuses_connections(port: int) -> bool:
    """True when nothing accepts TCP connections on 127.0.0.1:port.

    A connection that was still in the listen backlog when the listener closed
    is reset by the kernel (ECONNRESET) rather than refused: it was not
    accepted either, so both count as a refusal."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    writer.close()
    return False


class Process:
    """A child process whose combined stdout/stderr is read continuously (so it
    never blocks on a full pipe) and kept for diagnostics."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int, cwd: str | None = None) -> None:
        self.name, self.proc, self.port = name, proc, port
        self.lines: list[str] = []
        self._log = logging.getLogger(f"cyberhub.process.{name}")
        self._cwd = cwd
        self._awaited: list[tuple[re.Pattern[str], asyncio.Future[re.Match[str]]]] = []  # wait_for_line
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self._log.info("%s", line)
            for pattern, found in self._awaited:
                match = pattern.search(line)
                if match and not found.done():
                    found.set_result(match)
        # Output ended (the process exited): no awaited line can come any more.
        code = await self.proc.wait()
        for _, found in self._awaited:
            if not found.done():
                found.set_exception(AssertionError(f"{self.name} exited ({code})"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def wait_for_line(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        """The first output line matching `pattern`, as soon as the process prints it."""
        for line in self.lines:
            if match := pattern.search(line):
                return match
        found: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()
        self._awaited.append((pattern, found))
        try:
            return await asyncio.wait_for(found, START_LIMIT)
        except AssertionError as exc:
            await self._reader
            raise AssertionError(f"{exc} before {what}:\n{self.output}") from None
        except TimeoutError:
            raise AssertionError(f"{self.name}: no {what} within {START_LIMIT:.0f} s:\n{self.output}") from None
        finally:
            self._awaited.remove((pattern, found))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):  # exited just now
                self.proc.send_signal(sig)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.wait()

    async def wait(self, limit: float = STOP_LIMIT) -> int:
        """The exit code, once the process has exited and its output is read."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), limit)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.proc.wait()
            await self._reader
            raise AssertionError(f"{self.name} did not exit within {limit:.0f} s:\n{self.output}") from None
        await self._reader
        if self._cwd:
            shutil.rmtree(self._cwd, ignore_errors=True)
        return code

    async def stop(self) -> int:
        """SIGTERM, as a process manager sends it; returns the exit code."""
        self.signal(signal.SIGTERM)
        return await self.wait()


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_SETTINGS}
    env.update(PYTHONUNBUFFERED="1", LOG_FORMAT="text", LOG_LEVEL="INFO")
    env.update(settings)
    return env


LISTENING = re.compile(r"running on port (\d+)")
REDIS_READY = re.compile(r"Ready to accept connections")


async def start_server(name: str = "server", preexec_fn: Callable[[], None] | None = None,
                       **settings: str) -> Process:
    """`python run.py` with the given settings (environment names, e.g.
    JWT_SECRET="..."); returns once GET /health is 200.

    PORT=0 lets the kernel pick a free port (read back from the start-up log
    line), so two processes can never race for one. It runs in an empty
    working directory so that a developer's `.env` in the checkout is not read."""
    cwd = tempfile.mkdtemp(prefix="cyberhub-proc-")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"),
        cwd=cwd, env=server_env(PORT="0", HOST="127.0.0.1", **settings),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        preexec_fn=preexec_fn,  # e.g. a lower open-file limit (tests/test_fd_limit.py)
    )
    server = Process(name, proc, 0, cwd)

    try:
        server.port = int((await server.wait_for_line(LISTENING, "'running on port' log line")).group(1))
        # Logged once the socket listens and start-up is over: the first request is answered.
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}/health") as resp:
            assert resp.status == 200, f"{name}: /health answered {resp.status}:\n{server.output}"
    except (AssertionError, aiohttp.ClientError):
        await server.kill()
        raise
    return server


async def start_redis() -> Process:
    """A throwaway `redis-server` (Debian package) on a free port, no persistence."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required (Debian: apt-get install -y redis-server; .ci/run installs it)"
    for attempt in range(3):
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        redis = Process("redis-server", proc, port)

        try:
            await redis.wait_for_line(REDIS_READY, "'Ready to accept connections'")
            return redis
        except AssertionError:
            await redis.kill()
            # The free port can be taken between our probe and redis' bind; try another.
            if "Address already in use" not in redis.output or attempt == 2:
                raise
    raise AssertionError("unreachable")
