"""Broadcast fast path: one encoding, one websocket frame, the same bytes to
every websocket recipient.

python-socketio 5.18's `AsyncManager.emit` creates one asyncio task per
recipient; each wakes the socket's engine.io writer task, which encodes the
packet again and has Tornado build the frame again. With thousands of viewers
that per-recipient work (and the garbage it leaves) was the server's capacity.

Here, through python-socketio's documented `client_manager=` extension point
(`FastAsyncManager`, and `FastRedisManager` whose events relayed from other
processes reach the same `emit`), an event without acknowledgement callback
is encoded once and framed once (an unmasked text frame: no compression,
permessage-deflate is off in cyberhub/engineio_handler.py). Then, for each
recipient in the same synchronous step:

- a websocket whose engine.io queue is idle (nothing queued, nothing taken
  by the writer and not yet written) gets the frame written to its Tornado
  IOStream directly (a non-blocking `send` when Tornado holds nothing unsent
  for it, else `IOStream.write`, which keeps Tornado's ordering and error
  handling);
- every other socket (polling, in the middle of the polling → websocket
  upgrade, packets still queued — e.g. the Socket.IO CONNECT that follows
  the connect handler —, not a Tornado IOStream, compression on) gets the
  engine.io packet on its queue, exactly where python-socketio would have put
  it, so per socket the order of packets never changes;
- sockets still in their connect handler (no CONNECT sent yet) or being
  disconnected are not recipients, as in the Node server: no event can reach
  a client before its CONNECT.

Nothing here yields to the event loop between the first and last recipient,
so no other emit can interleave with a broadcast.

EVERY LIBRARY INTERNAL THE FAST PATH RELIES ON IS IN THIS MODULE, checked
against python-socketio 5.18.1, python-engineio 4.15.1 and tornado 6.6.1
(`CHECKED_VERSIONS`; tests/test_fanout_internals.py fails if one of these
assumptions stops holding after an upgrade):

python-socketio
  - `BaseManager.rooms`, `pending_connect`, `pending_disconnect`,
    `get_participants(namespace, room)` yielding `(sid, eio_sid)`;
    `server.packet_class`, `server.eio`; `AsyncPubSubManager._handle_emit`
    delivering through `super().emit` (so the MRO below puts this class
    between the pub/sub manager and `AsyncManager`).
python-engineio
  - `AsyncServer.sockets` ({eio_sid: AsyncSocket}) and `AsyncServer._async`
    (the async driver's dict; its `'websocket'` entry is the class
    `AsyncSocket._upgrade_websocket` instantiates as
    `cls(socket._websocket_handler, server)` and awaits with the request
    environ, whose `'tornado.handler'` is the Tornado WebSocketHandler);
  - `AsyncSocket.queue` (an unbounded asyncio.Queue), `upgraded`,
    `upgrading`, `closing`, `closed`, `sid`;
  - the websocket writer: `poll()` takes packets off the queue and calls
    `task_done()` for each, then the writer writes them with
    `WebSocket.send` → `write_message` without yielding in between. So
    `queue._unfinished_tasks == 0` means every packet ever queued is already
    in Tornado's stream.
tornado
  - `WebSocketHandler.ws_connection` (WebSocketProtocol13) with `stream`,
    `is_closing()`, `_compressor` (None when compression is off),
    `mask_outgoing` (False on the server side); frames are written with
    `stream.write` in call order;
  - `IOStream.socket` (non-blocking) and `IOStream._write_buffer` (empty when
    nothing is waiting to be sent);
  - asyncio (CPython 3.11): `asyncio.Queue._unfinished_tasks`.
"""

from __future__ import annotations

import logging
import struct
from importlib.metadata import version
from typing import Any

import socketio
import tornado
import tornado.iostream
import tornado.websocket
from engineio import packet as eio_packet
from engineio.async_drivers import tornado as eio_tornado
from socketio import packet as sio_packet

log = logging.getLogger("cyberhub.fanout")

CHECKED_VERSIONS = {"python-socketio": "5.18.1", "python-engineio": "4.15.1", "tornado": "6.6.1"}


def installed_versions() -> dict[str, str]:
    return {name: version(name) for name in CHECKED_VERSIONS}


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final, uncompressed websocket text frame (RFC 6455 5.2),
    as Tornado's `WebSocketProtocol13._write_frame` builds it server-side."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


def write_frame(stream: tornado.iostream.IOStream, frame: bytes) -> None:
    """The same bytes Tornado's `write_message` would put on this stream, in
    order after whatever it already holds. A plain socket with nothing
    pending gets a non-blocking send (no Future per recipient); the rest, a
    partial send or any error go through `IOStream.write`, which buffers,
    schedules and handles errors the Tornado way."""
    if type(stream) is tornado.iostream.IOStream and not stream._write_buffer:
        try:
            sent = stream.socket.send(frame)
        except OSError:  # would block, or broken: Tornado's write handles both
            sent = 0
        if sent == len(frame):
            return
        if sent:
            frame = frame[sent:]
    stream.write(frame)


class FastAsyncManager(socketio.AsyncManager):
    """`client_manager=` for one process. See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websockets: dict[str, tornado.websocket.WebSocketHandler] = {}  # eio sid -> handler
        self.fast_deliveries = 0
        self.queued_deliveries = 0

    def set_server(self, server: socketio.AsyncServer) -> None:
        super().set_server(server)
        eio = server.eio
        websockets = self.websockets

        class TrackedWebSocket(eio_tornado.WebSocket):  # type: ignore[misc]
            """engine.io's Tornado websocket wrapper, remembering which Tornado
            handler carries which engine.io socket while the socket lives."""

            async def __call__(self, environ: dict) -> None:
                sock = getattr(self.handler, "__self__", None)
                sid = getattr(sock, "sid", None)
                handler = environ.get("tornado.handler")
                if sid is not None and handler is not None:
                    websockets[sid] = handler
                try:
                    await super().__call__(environ)
                finally:
                    if sid is not None and websockets.get(sid) is handler:
                        del websockets[sid]

        # A copy: the driver's dict is module-level, shared by every server.
        eio._async = {**eio._async, "websocket": TrackedWebSocket}

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        if callback is not None:
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, to=to, **kwargs)
        self.deliver(event, data, namespace, to or room, skip_sid)

    def deliver(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> int:
        """Sends the event to every local recipient now; returns how many."""
        if namespace not in self.rooms:
            return 0
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        if isinstance(encoded, list):  # binary attachments: several engine.io packets, ordinary path only
            eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]
            frame = None
        else:
            eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, encoded)]
            frame = text_frame(eio_pkts[0].encode().encode("utf-8"))
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        skip.update(self.pending_connect.get(namespace, ()))
        skip.update(self.pending_disconnect.get(namespace, ()))
        sockets = self.server.eio.sockets
        websockets = self.websockets
        fast = queued = 0
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            sock = sockets.get(eio_sid)
            if sock is None or sock.closing or sock.closed:
                continue
            if frame is not None and sock.upgraded and not sock.upgrading \
                    and sock.queue._unfinished_tasks == 0:
                handler = websockets.get(eio_sid)
                conn = handler.ws_connection if handler is not None else None
                if conn is not None and not conn.is_closing() and conn._compressor is None \
                        and not conn.mask_outgoing:
                    try:
                        write_frame(conn.stream, frame)
                        fast += 1
                        continue
                    except tornado.iostream.StreamClosedError:
                        continue  # gone; engine.io notices on its read side
            for p in eio_pkts:
                sock.queue.put_nowait(p)  # where engine.io's own send would put it
            queued += 1
        self.fast_deliveries += fast
        self.queued_deliveries += queued
        return fast + queued


class FastRedisManager(socketio.AsyncRedisManager, FastAsyncManager):
    """`AsyncRedisManager` whose local delivery — of this process's own emits
    and of those relayed from other processes (`_handle_emit` →
    `super().emit`) — is `FastAsyncManager.emit`. MRO: FastRedisManager,
    AsyncRedisManager, AsyncPubSubManager, FastAsyncManager, AsyncManager."""

