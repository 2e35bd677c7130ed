"""File descriptors running out (issue 20, item 3), in a real child process
with a low open-file limit: more idle connections than it may hold are
refused with at most a log line or two (before: Tornado's accept loop spun on
EMFILE, a traceback each time, /health unreachable), and once they close the
server answers again by itself."""

from __future__ import annotations

import asyncio
import contextlib
import resource

import aiohttp

from cyberhub.server.listener import FD_RESERVE
from tests.support.client import WAIT
from tests.support.process import start_server

LIMIT = 200  # ulimit -n of the child


def low_open_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


async def health(port: int) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as resp:
        return resp.status


async def test_running_out_of_descriptors_refuses_quietly_and_recovers():
    server = await start_server("fdlimit", preexec_fn=low_open_file_limit)
    connections: list[asyncio.StreamWriter] = []
    try:
        for _ in range(LIMIT + 100):  # idle connections, more than the child may hold
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            connections.append(writer)
        # Past the reserve a new connection is closed at once, not left hanging.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = await asyncio.wait_for(reader.read(), WAIT)
        except ConnectionResetError:  # closed with the request unread: a reset, as good as an end
            answer = b""
        assert answer == b""
        writer.close()
    finally:
        for writer in connections:
            writer.close()
    # The connections are gone: the server takes new ones again, by itself. (A
    # request that raced the server's own noticing of the closes is retried.)
    async with asyncio.timeout(WAIT):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                if await health(server.port) == 200:
                    break
    assert await server.stop() == 0
    output = server.output
    assert "Traceback" not in output and "Too many open files" not in output, output[-3000:]
    refusals = [line for line in output.splitlines() if "Near the open-file limit" in line]
    assert 1 <= len(refusals) <= 2, refusals
    assert f"{FD_RESERVE} kept in reserve" in refusals[0]
