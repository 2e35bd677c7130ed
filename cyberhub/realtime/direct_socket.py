"""Websocket-first engine.io sessions without per-socket tasks, queues or timers.

A client that asks for websocket from the start (socket.io-client with
`transports: ['websocket']` or `['websocket', 'polling']`; its default
starts on polling and becomes a DirectSocket when it upgrades) opens its
engine.io session straight on the websocket: there is no polling
phase and no upgrade. python-engineio 4.15 still gives every such socket a
writer task, a reader task that runs `asyncio.wait_for` on every message, a
sleeping ping task and two `asyncio.Queue`s — ~12 KiB and ~100 GC-tracked
objects per socket (bench/README.md, "Memory per socket"). Here:

- `DirectSocket` (an engine.io `AsyncSocket`) writes each packet to the
  Tornado stream when it is sent, so the order on the wire is the order of
  the sends and nothing is ever queued; the broadcast fast path
  (cyberhub/realtime/fanout.py) writes its pre-built frame to it directly;
- messages arrive through the Tornado handler's `on_message`, which Tornado
  calls one message at a time (a coroutine `on_message` is awaited before
  the next message is read);
- one `PingScheduler` sends every such socket's pings from one timer; pong
  and ping-timeout handling stay engine.io's (`receive`,
  `check_ping_timeout`, called on time by cyberhub/realtime/reaper.py, which
  replaces engine.io's service task);
- once the session is open, the parts of the HTTP request that nothing reads
  any more are dropped (`trim_opened_request`): ~3 KiB per socket.

Sessions that start with polling keep engine.io's socket until they upgrade;
then cyberhub/realtime/socket_upgrade.py makes them DirectSockets too.

LIBRARY INTERNALS RELIED ON (checked against the versions in
cyberhub/realtime/wsframes.py; tests/test_fanout_internals.py fails if one changes):

python-engineio
  - `AsyncServer._handle_connect` for a websocket transport: what
    `open_direct_socket` re-does (OPEN packet fields, `_trigger_event('connect',
    sid, environ, run_async=False)` and its refusal rule, `schedule_ping`,
    `start_service_task` / `service_task_handle` / `_service_task`,
    `generate_id`, `sockets`); `handle_request`'s checks that a websocket-first
    request has passed by then (EIO=4, allowed transport, origin — the origin
    in cyberhub/realtime/engineio_handler.py);
  - `AsyncSocket`: `receive` (PONG → `schedule_ping`, CLOSE → `close`),
    `check_ping_timeout` (→ `close(wait=False, abort=False)`), `send`
    (ping-timeout check, then queue), `close`'s effects, the attributes
    `BaseSocket.__init__` sets. (A deliberate difference: engine.io's reader
    decodes a packet outside its error handling, so an undecodable one ends
    its reader task and the session lingers until its ping times out; a
    DirectSocket closes at once, as for a too-long one.)
  - `AsyncServer`: `send_packet` → `socket.send(pkt)`; `disconnect` →
    `socket.close(reason=…)`; `_get_socket` forgets closed sockets; and
    `handle_request` refuses any polling GET/POST or upgrade carrying the sid
    of an `upgraded` socket — so nothing ever reaches a DirectSocket's
    (absent) queue, `poll` or `handle_get_request`. `Packet.encode()` gives
    `str` for text packets and `bytes` for binary ones;
  - the Tornado driver: `translate_request`'s environ (`websocket_environ` makes
    the same, without the per-request `wsgi.input` class; `polling_environ`
    the same with one `RequestBody` class), called through
    `AsyncServer._async['translate_request'](handler)` for every request; the handler's
    `receive_queue` made in `__init__` and used only by `on_message` /
    `get_next_message` / `on_close`, and `open()` starting `handle_request`.
tornado
  - `WebSocketHandler.ws_connection` with `stream`, `is_closing()` and
    `_compressor`; `on_message` awaited per message; after `open()` the
    request's headers and arguments are read by nothing (`_accept_connection`
    reads them before `open()`), nor its `connection` and `server_connection`
    (the handshake has been answered and the stream detached before `open()`:
    they serve only HTTP requests); `RequestHandler.ui` is only for templates
    (`_break_cycles` sets it to None), and `RequestHandler._headers` holds
    only the response headers (set by `clear()`, written by `flush()`);
    `WebSocketProtocol13.is_closing()` is true once the stream is closed.
python-socketio
  - the Socket.IO CONNECT is sent before `manager.connect` takes the socket
    out of `pending_connect`, so the fan-out (which skips pending sockets)
    never writes an event ahead of it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import engineio
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket
from engineio import async_socket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from cyberhub.realtime.guard import SocketGuard
from cyberhub.realtime.wsframes import text_frame, write_frame

log = logging.getLogger("cyberhub.direct_socket")

PING_FRAME = text_frame(eio_packet.Packet(eio_packet.PING).encode().encode())
PONG_MESSAGE = eio_packet.Packet(eio_packet.PONG).encode()  # "3": every client's answer to a ping


def can_open_directly(server: engineio.AsyncServer, handler: tornado.websocket.WebSocketHandler) -> bool:
    """A new engine.io v4 session asked for straight over websocket, on a
    connection whose frames are the plain ones the fast paths write."""
    query = parse_qs(handler.request.query)
    conn = handler.ws_connection
    return ("sid" not in query and "j" not in query and query.get("transport") == ["websocket"]
            and query.get("EIO") == ["4"] and "websocket" in server.transports
            and conn is not None and conn._compressor is None)


def websocket_environ(handler: tornado.websocket.WebSocketHandler) -> dict[str, Any]:
    """engine.io's Tornado `translate_request` environ for a websocket request,
    without `wsgi.input` (a body reader of a class engine.io creates per
    request: garbage for the cyclic collector, and a websocket has no body)."""
    request = handler.request
    full_uri = request.path + ("?" + request.query if request.query else "")
    environ: dict[str, Any] = {
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "aiohttp",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query or "",
        "RAW_URI": full_uri,
        "SERVER_PROTOCOL": f"HTTP/{request.version}",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "aiohttp",
        "SERVER_PORT": "0",
        "tornado.handler": handler,
    }
    for name, value in request.headers.items():
        name = name.upper()
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            environ["HTTP_" + name.replace("-", "_")] = value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    environ["PATH_INFO"] = urlsplit(request.path).path
    environ["SCRIPT_NAME"] = ""
    return environ


class RequestBody:
    """`wsgi.input` of a polling request. engine.io's Tornado driver defines a
    new class for every request (`AwaitablePayload` inside `translate_request`):
    cyclic garbage that only a full collection frees — or never, once
    `gc.freeze()` (realtime/loopmonitor.py) has taken it (~2.7 KiB per session
    that started on polling, measured with bench/socket_memory.py). One class
    here, the same reads."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes | None) -> None:
        self.payload = payload or b""

    async def read(self, length: int | None = None) -> bytes:
        if length is None:
            data, self.payload = self.payload, b""
        else:
            data, self.payload = self.payload[:length], self.payload[length:]
        return data


def polling_environ(handler: tornado.web.RequestHandler) -> dict[str, Any]:
    """engine.io's Tornado `translate_request` (installed in its place by
    realtime/engineio_handler.py): the same environ, with a RequestBody."""
    environ = websocket_environ(handler)
    environ["wsgi.input"] = RequestBody(handler.request.body)
    return environ


def trim_opened_request(handler: tornado.websocket.WebSocketHandler) -> None:
    """Drop what an open websocket's handler keeps but nothing reads again:
    the request's arguments and headers, its HTTP/1 connection (the stream
    was detached from it: it is the websocket's now), the response headers of
    the 101 already sent, the template namespace. The request itself stays
    (its remote_ip, method and uri are read for logs)."""
    request = handler.request
    request.arguments = request.query_arguments = request.body_arguments = {}
    request.files = {}
    request.headers = tornado.httputil.HTTPHeaders()
    # With them go the request-reading task that ended at the upgrade, and the
    # headers (it holds them too): ~2 KiB per socket.
    request.connection = request.server_connection = None
    handler._headers = tornado.httputil.HTTPHeaders()
    handler.ui = None


class DirectSocket(async_socket.AsyncSocket):
    """An engine.io socket opened straight over websocket (module docstring)."""

    queue = None  # nothing is ever queued; code that tries fails loudly

    def __init__(self, server: engineio.AsyncServer, sid: str,
                 handler: tornado.websocket.WebSocketHandler, pings: PingScheduler,
                 guard: SocketGuard | None = None) -> None:
        # BaseSocket.__init__ without its queue.
        self.server = server
        self.sid = sid
        self.last_ping = time.time()
        self.connected = False
        self.upgrading = False
        self.upgraded = True  # a websocket from its first packet
        self.closing = False
        self.closed = False
        self.session: dict = {}
        self.handler: tornado.websocket.WebSocketHandler | None = handler
        self.pings = pings
        self.guard = guard

    # -- writing: synchronous, straight to the stream ------------------------
    def write_frame(self, frame: bytes) -> None:
        """Writes one pre-built text frame (fan-out, pings)."""
        handler = self.handler
        conn = handler.ws_connection if handler is not None else None
        if conn is None or conn.is_closing():
            return  # gone: on_close ends the socket
        try:
            write_frame(conn.stream, frame)
        except tornado.iostream.StreamClosedError:
            pass  # gone: on_close ends the socket
        except tornado.iostream.StreamBufferFullError:
            self.overflowed(conn)

    def write(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        if isinstance(encoded, str):
            self.write_frame(text_frame(encoded.encode("utf-8")))
            return
        handler = self.handler
        if handler is not None and handler.ws_connection is not None and not handler.ws_connection.is_closing():
            try:
                written = handler.write_message(encoded, binary=True)
            except tornado.iostream.StreamBufferFullError:
                self.overflowed(handler.ws_connection)
                return
            # a stream closed before this is flushed fails the future: read it, nobody awaits it
            written.add_done_callback(lambda f: f.cancelled() or f.exception())

    def overflowed(self, conn: tornado.websocket.WebSocketProtocol) -> None:
        """More than SOCKET_MAX_PENDING_BYTES unsent (cyberhub/realtime/pending.py):
        the connection is dropped at once (no close frame: it would not fit
        either); Tornado's on_close then ends the session."""
        if self.guard is not None:
            self.guard.report(self.sid, "send_buffer_full", "more than %s bytes unsent, disconnected",
                              conn.stream.max_write_buffer_size)
        conn.stream.close()

    async def send(self, pkt: eio_packet.Packet) -> None:
        """AsyncSocket.send, written now instead of queued."""
        if await self.check_ping_timeout():
            self.write(pkt)

    # -- reading: Tornado's on_message, one message at a time ----------------
    def received(self, message: str | bytes) -> Awaitable[None] | None:
        """What engine.io's websocket reader does with one message. A pong —
        what every client sends each ping interval — is handled here and now,
        as `AsyncSocket.receive` handles it; anything else returns the
        coroutine that handles it (Tornado runs an `on_message` result in a
        task of its own, and reads the next frame once it is done)."""
        if message == PONG_MESSAGE:
            self.server.logger.info("%s: Received packet %s data %s", self.sid, "PONG", None)
            self.schedule_ping()
            return None
        return self._received(message)

    async def _received(self, message: str | bytes) -> None:
        if len(message) > self.server.max_http_buffer_size:
            self.transport_closed()  # engine.io: a packet too large ends the socket
            return
        try:
            pkt = eio_packet.Packet(encoded_packet=message)
        except Exception:
            if self.guard is not None:
                self.guard.report(self.sid, "bad_packet", "undecodable engine.io packet, disconnected")
            self.transport_closed()
            return
        try:
            await self.receive(pkt)
        except eio_exceptions.UnknownPacketError:
            pass
        except eio_exceptions.SocketIsClosedError:
            self.transport_closed()
        except Exception:
            self.server.logger.exception("Unknown receive error")

    # -- pings: one scheduler instead of a task per socket -------------------
    def schedule_ping(self) -> None:
        if self.last_ping:  # as AsyncSocket: only once the previous ping was answered
            self.last_ping = None
            self.pings.schedule(self)

    def ping(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.write_frame(PING_FRAME)

    # -- ending --------------------------------------------------------------
    async def close(self, wait: bool = True, abort: bool = False, reason: str | None = None) -> None:
        """AsyncSocket.close; nothing to wait for (nothing is queued), and the
        websocket is closed here rather than by a writer task."""
        if self.closed or self.closing:
            return
        self.closing = True
        try:
            await self.server._trigger_event(
                "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False)
            if not abort:
                self.write(eio_packet.Packet(eio_packet.CLOSE))
        finally:
            self.closed = True
            self.release()

    def transport_closed(self) -> None:
        """The websocket ended (client gone, bad packet): as engine.io's reader
        loop ending, the socket closes with reason 'transport close'."""
        if not self.closing and not self.closed:
            task = asyncio.ensure_future(
                self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE))
            _closing_tasks.add(task)
            task.add_done_callback(_closing_tasks.discard)
        elif self.closed:
            self.release()
        # else: close() is running (its disconnect handlers may still use the
        # session); its `finally` releases the socket

    def release(self) -> None:
        """Forget the session and close the websocket; drop the references that
        tie this socket and its Tornado handler together."""
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.eio_socket = None
            conn = handler.ws_connection
            if conn is not None and not conn.is_closing():
                try:
                    handler.close()
                except tornado.iostream.StreamBufferFullError:  # no room for the close frame
                    conn.stream.close()


_closing_tasks: set[asyncio.Task] = set()  # referenced until done (asyncio keeps only weak ones)


class PingScheduler:
    """engine.io's server-side pings for every DirectSocket from one timer:
    each socket is pinged `interval` seconds after its last pong (as
    AsyncSocket._send_ping does with a sleeping task per socket). Pings due
    within GRANULARITY of each other go out in the same step."""

    GRANULARITY = 0.05

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._due: deque[tuple[float, DirectSocket]] = deque()  # in due order: the interval is constant
        self._timer: asyncio.TimerHandle | None = None

    def schedule(self, sock: DirectSocket) -> None:
        loop = asyncio.get_running_loop()
        self._due.append((loop.time() + self.interval, sock))
        if self._timer is None:
            self._timer = loop.call_at(self._due[0][0], self._fire)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._due
        try:
            while due and due[0][0] <= now + self.GRANULARITY:
                sock = due.popleft()[1]
                try:
                    sock.ping()
                except Exception:  # one socket's failure must not stop everyone's pings
                    log.exception("Ping to %s failed", sock.sid)
        finally:
            self._timer = loop.call_at(max(due[0][0], now + self.GRANULARITY), self._fire) if due else None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()


async def open_direct_socket(server: engineio.AsyncServer, handler: tornado.websocket.WebSocketHandler,
                             pings: PingScheduler, guard: SocketGuard | None = None) -> DirectSocket | None:
    """engine.io's `_handle_connect` for a websocket-first session, called from
    the Tornado handler's `open()` once the upgrade is done. Returns None when
    the application refused the connection (the websocket is then closed)."""
    if server.start_service_task:  # the task that closes sockets whose pings time out
        server.start_service_task = False
        server.service_task_handle = server.start_background_task(server._service_task)
    environ = websocket_environ(handler)
    trim_opened_request(handler)
    sid = server.generate_id()
    sock = DirectSocket(server, sid, handler, pings, guard)
    handler.eio_socket = sock
    server.sockets[sid] = sock
    sock.write(eio_packet.Packet(eio_packet.OPEN, {
        "sid": sid,
        "upgrades": [],
        "pingTimeout": int(server.ping_timeout * 1000),
        "pingInterval": int(server.ping_interval + server.ping_interval_grace_period) * 1000,
        "maxPayload": server.max_http_buffer_size,
    }))
    ret = await server._trigger_event("connect", sid, environ, run_async=False)
    if ret is not None and ret is not True:  # (refused: counted by whoever refused it)
        sock.closed = True
        sock.release()
        return None
    sock.connected = True
    sock.schedule_ping()
    return sock
