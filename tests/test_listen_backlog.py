"""LISTEN_BACKLOG reaches the listening socket: a restart makes every client
reconnect at once, and with Tornado's default backlog (128) the kernel dropped
most of 5,000 reconnecting clients' SYNs (bench/README.md, "Reconnect storm")."""

from __future__ import annotations

import asyncio
import shutil

import pytest


async def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on `port`, as the kernel reports it
    (`ss`: a listening socket's Send-Q is its backlog)."""
    proc = await asyncio.create_subprocess_exec("ss", "-ltnH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    lines = out.decode().split("\n")
    rows = [line.split() for line in lines if line.strip()]
    assert len(rows) == 1, out
    return int(rows[0][2])  # State Recv-Q Send-Q Local Peer


@pytest.mark.parametrize("backlog", [37, 1024])
async def test_the_listening_socket_has_the_configured_backlog(start_live, backlog):
    assert shutil.which("ss"), "ss (iproute2) is needed: .ci/run installs it"
    live = await start_live(listen_backlog=backlog)
    assert await listen_backlog(live.server.port) == backlog
