"""Polling sessions that upgrade to a websocket end as DirectSockets.

socket.io-client's default (`io(url)`, what the frontend uses) opens its
engine.io session on HTTP long-polling, then upgrades it to a websocket. Left
to engine.io, the upgraded session keeps an `AsyncSocket` with a writer task,
a reader task that runs `asyncio.wait_for` on every message, a sleeping ping
task and two queues (~39 KiB per idle socket against ~18 for a DirectSocket,
bench/README.md). Here the upgrade handshake itself is done on the Tornado
handler, as engine.io's `AsyncSocket._websocket_handler` does it, and at its
end the session's socket is replaced by a `DirectSocket` on the new
websocket:

1. probe: the client sends `2probe` on the websocket; the answer is `3probe`,
   and a NOOP is queued on the polling socket so that its pending GET ends
   (the client pauses polling once that GET is back);
2. upgrade: the client sends `5`. In one synchronous step, with no await in
   between so nothing can be sent or polled meanwhile: the packets still
   queued on the polling socket are written to the websocket in queue order,
   the DirectSocket takes the session's place in `server.sockets`
   (same sid, session, ping state), and the polling socket is retired.

Per socket the order of packets holds across the switch: everything sent
before the switch went to the polling queue (taken by the last GET or
written here first), everything after it goes straight to the websocket.
A retired socket can no longer disconnect the session: its sleeping ping
task is cancelled (`PingTasks`); it is marked `closing` — not `closed`:
the session expiry pass (realtime/reaper.py, and engine.io's own monitor when
it runs) walks a copy of the session table and forgets every `closed`
socket's sid, which by then is the DirectSocket's, while it skips a
`closing` one instead of checking its ping timeout; a late GET or POST with
its sid finds the DirectSocket (`upgraded`), which engine.io's
`handle_request` refuses; and a send still addressed to it is forwarded to
the DirectSocket.

A probe or upgrade that does not come within the ping timeout, a wrong
packet, or a websocket closed mid-handshake abandons the upgrade: the
websocket is closed and the session goes on polling (engine.io's own rules,
with the time bound added so an idle half-upgrade cannot hold a connection).

LIBRARY INTERNALS RELIED ON (python-engineio 4.15.1, python-socketio 5.18.1;
checked by tests/test_socket_upgrade.py):
  - python-socketio's `AsyncServer.environ` ({eio sid: the connect request's
    environ}, kept for the session and handed to later namespace connects);
  - `AsyncSocket.queue` (an asyncio.Queue of `Packet`, `None` = close),
    `connected`, `upgrading` (GET polls answer NOOP while set), `upgraded`,
    `closing`, `closed`, `session`, `last_ping` (None while a ping is
    scheduled and not yet sent), `_send_ping` sending nothing once the socket
    is closing;
  - `AsyncServer._service_task`: over a copy of `sockets`, a `closed`
    socket's sid is deleted from `sockets`, a `closing` one is skipped, the
    others get `check_ping_timeout()`;
  - `AsyncServer.handle_request` refusing a polling GET or POST whose
    session's socket is `upgraded`, and `_get_socket` reading `sockets`;
  - `AsyncServer.start_background_task(target)` is how `schedule_ping` starts
    `_send_ping` (a bound method of the socket), returning the task;
  - `AsyncSocket._websocket_handler`'s upgrade handshake (probe → PONG probe
    + NOOP queued → UPGRADE), which this mirrors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any
from urllib.parse import parse_qs

import engineio
import tornado.iostream
import tornado.websocket
from engineio import async_socket
from engineio import packet as eio_packet

from cyberhub.realtime.direct_socket import DirectSocket, PingScheduler, trim_opened_request
from cyberhub.realtime.guard import SocketGuard
from cyberhub.realtime.wsframes import text_frame, write_frame

log = logging.getLogger("cyberhub.direct_socket")

PROBE = "2probe"
PROBE_ANSWER = text_frame(b"3probe")
UPGRADE = "5"


def upgradable_socket(server: engineio.AsyncServer,
                      handler: tornado.websocket.WebSocketHandler) -> async_socket.AsyncSocket | None:
    """The polling socket a websocket request asks to upgrade, when it is one
    this module can take over (else engine.io's own path handles the request,
    including its refusals)."""
    query = parse_qs(handler.request.query)
    sids = query.get("sid")
    conn = handler.ws_connection
    if sids is None or len(sids) != 1 or "j" in query or query.get("transport") != ["websocket"] \
            or "websocket" not in server.transports or conn is None or conn._compressor is not None:
        return None
    sock = server.sockets.get(sids[0])
    if type(sock) is not async_socket.AsyncSocket or not sock.connected or sock.upgraded or sock.upgrading \
            or sock.closing or sock.closed:
        return None
    return sock


class PingTasks:
    """The sleeping ping task of each polling socket, so that the upgrade can
    end it: engine.io starts it through `start_background_task` and keeps no
    handle, and left alone it would sleep a whole ping interval (25 s) after
    the socket has gone. Installed on the server object (an instance attribute
    wrapping the public method; the library's files are untouched)."""

    def __init__(self, server: engineio.AsyncServer) -> None:
        self._tasks: weakref.WeakKeyDictionary[async_socket.AsyncSocket, asyncio.Task] = weakref.WeakKeyDictionary()
        start = server.start_background_task
        ping = async_socket.AsyncSocket._send_ping

        def start_background_task(target: Any, *args: Any, **kwargs: Any) -> Any:
            task = start(target, *args, **kwargs)
            if getattr(target, "__func__", None) is ping:
                self._tasks[target.__self__] = task
            return task

        server.start_background_task = start_background_task  # type: ignore[method-assign]

    def cancel(self, sock: async_socket.AsyncSocket) -> None:
        task = self._tasks.pop(sock, None)
        if task is not None:
            task.cancel()


class PollingUpgrade:
    """The upgrade handshake of one polling socket on one websocket handler."""

    def __init__(self, server: engineio.AsyncServer, handler: tornado.websocket.WebSocketHandler,
                 polling: async_socket.AsyncSocket, pings: PingScheduler, ping_tasks: PingTasks,
                 environs: dict[str, dict], guard: SocketGuard | None) -> None:
        self.server = server
        self.guard = guard
        self.ping_tasks = ping_tasks
        self.environs = environs
        self.handler: Any = handler
        self.polling: Any = polling
        self.pings = pings
        self.probed = False
        polling.upgrading = True  # as engine.io: new GET polls answer NOOP meanwhile
        trim_opened_request(handler)
        self._deadline = asyncio.get_running_loop().call_later(server.ping_timeout, self.abandon)

    def received(self, message: str | bytes) -> DirectSocket | None:
        """One handshake message; the DirectSocket once the upgrade is done."""
        if self.polling is None:
            return None  # ended (abandoned) already
        if not self.probed and message == PROBE:
            self.probed = True
            conn = self.handler.ws_connection
            if conn is not None and not conn.is_closing():
                with contextlib.suppress(tornado.iostream.StreamClosedError):
                    write_frame(conn.stream, PROBE_ANSWER)
            self.polling.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))  # ends the pending GET
            return None
        if self.probed and message == UPGRADE:
            return self._switch()
        log.info("%s: failed websocket upgrade, unexpected packet", self.polling.sid)
        self.abandon()
        return None

    def _switch(self) -> DirectSocket | None:
        self._deadline.cancel()
        polling, server = self.polling, self.server
        if polling.closing or polling.closed or server.sockets.get(polling.sid) is not polling:
            self.abandon()  # the session ended during the handshake
            return None
        direct = DirectSocket(server, polling.sid, self.handler, self.pings, self.guard)
        direct.session = polling.session
        direct.connected = True
        # Everything queued before this step, in order, then the switch: no
        # await between them, so no packet can slip in or be polled meanwhile.
        closing = False
        while not polling.queue.empty():
            pkt = polling.queue.get_nowait()
            polling.queue.task_done()
            if pkt is None:  # engine.io's "close" marker
                closing = True
                break
            direct.write(pkt)
        server.sockets[polling.sid] = direct
        self._retire(polling, direct)
        self.ping_tasks.cancel(polling)
        self.handler.eio_socket = direct
        self._trim_environ(polling.sid)
        # Ping state: a ping awaiting its pong carries over (the pong now comes
        # on the websocket); a ping still to be sent is sent by the one timer.
        if polling.last_ping:
            direct.last_ping = polling.last_ping
        else:
            direct.last_ping = 1.0  # truthy: schedule_ping schedules the next one
            direct.schedule_ping()
        if closing:
            direct.transport_closed()
        # The deadline's cancelled timer stays in the loop's heap until it is
        # due: let it hold nothing of the session meanwhile.
        self.polling = self.handler = None
        return direct

    def _trim_environ(self, sid: str) -> None:
        """The environ python-socketio keeps for the session's life is the
        polling handshake's: its `tornado.handler` would keep that finished
        request (handler, request, headers: ~5 KiB) alive, and `wsgi.input`
        is an instance of a class engine.io makes per request. The websocket's
        handler, alive anyway, stands in for the former (same client)."""
        environ = self.environs.get(sid)
        if environ is not None:
            environ.pop("wsgi.input", None)
            environ["tornado.handler"] = self.handler

    @staticmethod
    def _retire(polling: async_socket.AsyncSocket, direct: DirectSocket) -> None:
        polling.upgrading = False
        polling.upgraded = True
        # Closing, never closed: engine.io's service task deletes a closed
        # socket's sid from the table — the DirectSocket's sid now.
        polling.closing = True
        # A sender that looked the socket up before the switch and sends after
        # it (none does in engine.io/python-socketio 4.15/5.18, but cheap to
        # guarantee) reaches the session's new socket.
        polling.send = direct.send  # type: ignore[method-assign]

    def abandon(self) -> None:
        """The upgrade failed: the session goes on polling; the websocket closes."""
        self._deadline.cancel()
        polling, handler = self.polling, self.handler
        if polling is None:
            return  # switched or abandoned already
        self.polling = self.handler = None
        polling.upgrading = False
        handler.upgrade = None
        conn = handler.ws_connection
        if conn is not None and not conn.is_closing():
            handler.close()


def start_upgrade(server: engineio.AsyncServer, handler: Any, pings: PingScheduler, ping_tasks: PingTasks,
                  environs: dict[str, dict], guard: SocketGuard | None) -> PollingUpgrade | None:
    """`environs`: python-socketio's `AsyncServer.environ` ({eio sid: environ});
    `guard`: the per-client limits' reporter the DirectSocket reports to."""
    polling = upgradable_socket(server, handler)
    if polling is None:
        return None
    return PollingUpgrade(server, handler, polling, pings, ping_tasks, environs, guard)
