"""Sessions whose client went away expire on time: at
SOCKET_PING_INTERVAL + SOCKET_PING_TIMEOUT, give or take one tick.

engine.io's own monitor (`monitor_clients`, its `_service_task`) visits the
sessions one at a time, `ping_timeout / len(sockets)` apart, each step an
`asyncio.wait_for`: with thousands of sessions a round takes far longer than
`ping_timeout` under load (measured: sessions alive 100–130 s instead of
45 s), and costs CPU the whole time. It is turned off
(`monitor_clients=False`, documented) and replaced by this: every TICK a
synchronous pass over the table picks the sessions whose last ping went
unanswered for longer than `ping_timeout` (and forgets closed ones), and
only those are closed, through engine.io's own `check_ping_timeout`.

LIBRARY INTERNALS RELIED ON (python-engineio 4.15.1;
tests/test_fanout_internals.py fails if one changes): `AsyncSocket.last_ping`
is the time of the ping awaiting its pong (None/0 when none is awaited),
`check_ping_timeout()` closes a session past `ping_timeout`;
`AsyncServer.shutdown()` sets `service_task_event` and awaits
`service_task_handle` — so this task, registered there, stops with the
server like engine.io's own would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import engineio
from engineio import exceptions as eio_exceptions

log = logging.getLogger("cyberhub.realtime.reaper")

MAX_TICK = 1.0  # seconds


class SessionReaper:
    def __init__(self, eio: engineio.AsyncServer) -> None:
        self.eio = eio
        self.tick = min(MAX_TICK, eio.ping_timeout / 4)
        self.expired = 0

    def ensure_running(self) -> None:
        eio = self.eio
        if eio.service_task_handle is None:
            eio.service_task_event = asyncio.Event()
            eio.service_task_handle = asyncio.ensure_future(self._run(eio.service_task_event))

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick)
                return
            try:
                await self.sweep()
            except Exception:  # one bad pass must not end expiry for the process's lifetime
                log.exception("Session expiry pass failed")

    async def sweep(self) -> None:
        eio = self.eio
        sessions = eio.sockets
        deadline = time.time() - eio.ping_timeout
        for sid, sock in list(sessions.items()):
            if sock.closed:
                sessions.pop(sid, None)
            elif not sock.closing and sock.last_ping and sock.last_ping < deadline:
                with contextlib.suppress(eio_exceptions.SocketIsClosedError):
                    await sock.check_ping_timeout()
                self.expired += 1
                if sock.closed and sessions.get(sid) is sock:
                    sessions.pop(sid, None)
