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
permessage-deflate is off in cyberhub/realtime/engineio_handler.py). Then, for each
recipient in the same synchronous step:

- a websocket-first socket (cyberhub/realtime/direct_socket.py: nothing is ever
  queued) gets the frame written to its stream;
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

Recipients are taken when the event is emitted. A broadcast to more than
SLICE sockets is written SLICE recipients per event-loop step (so 10,000
sockets never stall the loop for the whole broadcast); while one is in
progress every later event of this manager waits behind it, in emit order,
so per socket the order of events is the order of the emits.

EVERY LIBRARY INTERNAL THE BROADCAST PATH RELIES ON IS LISTED HERE (the
frame writing ones in cyberhub/realtime/wsframes.py, the websocket-first sessions' in
cyberhub/realtime/direct_socket.py), checked against python-socketio 5.18.1,
python-engineio 4.15.1 and tornado 6.6.1 (`wsframes.CHECKED_VERSIONS`;
tests/test_fanout_internals.py fails if one of these assumptions stops
holding after an upgrade):

python-socketio
  - rooms change only through `basic_enter_room` / `basic_leave_room` /
    `basic_disconnect` (pre_connect and close_room use them), so the
    per-socket room index here stays in step; `basic_disconnect` is
    re-implemented with the same effects;
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
  - `WebSocket.wait()` returns the next message of the Tornado handler's
    `get_next_message()` and raises OSError on None (closed); the reader in
    `AsyncSocket._websocket_handler` ends the same way on a None message
    (`if p is None: break`), which is what `TrackedWebSocket.wait` returns
    once the socket is upgraded — no exception, hence no traceback cycle;
  - the Tornado driver's `WebSocket.send` is `write_message` with
    `WebSocketClosedError` → `EngineIOError`; `TrackedWebSocket.send` does the
    same, keeping (and reading) the Future `write_message` returns;
  - `environ['wsgi.input']` (an instance of a class engine.io creates per
    request) is read only by polling POSTs; the websocket's copy is dropped;
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

import asyncio
import logging
from collections import deque
from typing import Any

import socketio
import tornado.httputil
import tornado.iostream
import tornado.websocket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import tornado as eio_tornado
from socketio import packet as sio_packet

from cyberhub.realtime.admission import Admission
from cyberhub.realtime.direct_socket import DirectSocket, PingScheduler, open_direct_socket
from cyberhub.realtime.eviction import evict
from cyberhub.realtime.guard import SocketGuard
from cyberhub.realtime.pending import CappedQueue
from cyberhub.realtime.reaper import SessionReaper
from cyberhub.realtime.wsframes import text_frame, write_frame

log = logging.getLogger("cyberhub.fanout")

# Recipients written per event-loop step. A write to a loopback socket costs
# ~10–50 µs here (the kernel does the receiving side's TCP work in the
# sender's call), so a step of 250 stays around 3–12 ms and a broadcast to
# 10,000 sockets never stalls the loop for long. Measured at 10,000 viewers
# under full load (bench/README.md): steps of 500 let 6–8 lag samples a run
# pass 40 ms, steps of 250 0–2, at the same broadcast time.
SLICE = 250

def _read_result(future: asyncio.Future) -> None:
    """Marks a write's outcome as read (nobody awaits the write)."""
    if not future.cancelled():
        future.exception()


class Delivery:
    """One event on its way: the bytes, who gets them, how far it has got."""

    __slots__ = ("done", "eio_pkts", "frame", "next", "recipients")

    def __init__(self, frame: bytes | None, eio_pkts: list, recipients: list[str]) -> None:
        self.frame = frame
        self.eio_pkts = eio_pkts
        self.recipients = recipients
        self.next = 0
        self.done: asyncio.Future | None = None  # made when the job has to wait its turn


class FastAsyncManager(socketio.AsyncManager):
    """`client_manager=` for one process. See the module docstring."""

    # Set by create_socket_server (cyberhub/realtime/sockets.py).
    admission: Admission
    reaper: SessionReaper

    def reserve_handshake(self, request: tornado.httputil.HTTPServerRequest) -> tuple[str | None, str | None]:
        """For every /socket.io/ request, polling or websocket: keeps the
        session reaper running, and a request that would open a session (no
        `sid`) takes its place under the session limits. Returns (the address
        now reserved, None), (None, the refusal, counted), or (None, None) for
        a request of an existing session."""
        self.reaper.ensure_running()
        if "sid" in request.query_arguments:
            return None, None
        address = request.remote_ip or "unknown"
        refusal = self.admission.reserve(address)
        if refusal is not None:
            self.guard.count(refusal)
            return None, refusal
        return address, None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websockets: dict[str, tornado.websocket.WebSocketHandler] = {}  # eio sid -> handler
        self._jobs: deque[Delivery] = deque()  # broadcasts being delivered, in emit order
        # (namespace, sid) -> its rooms, None included: a list, as a socket is in
        # two or three rooms (a 3-item set costs ~200 bytes more per socket)
        self._rooms_of: dict[tuple[str, str], list] = {}
        self._worker: asyncio.Task | None = None
        self.fast_deliveries = 0
        self.queued_deliveries = 0
        # Per-client limits (cyberhub/realtime/pending.py, guard.py); set by
        # create_socket_server before the server is made.
        self.guard = SocketGuard()
        self.max_pending_bytes: int | None = None

    def set_server(self, server: socketio.AsyncServer) -> None:
        super().set_server(server)
        eio = server.eio
        self.pings = PingScheduler(eio.ping_interval)
        websockets = self.websockets
        guard = self.guard
        if self.max_pending_bytes is not None:
            # Every engine.io socket's queue (polling sessions keep theirs until
            # the next GET) holds at most SOCKET_MAX_PENDING_BYTES.
            limit = self.max_pending_bytes
            eio.create_queue = lambda *args, **kwargs: CappedQueue(limit, self._queue_overflowed)

        class TrackedWebSocket(eio_tornado.WebSocket):  # type: ignore[misc]
            """engine.io's Tornado websocket wrapper, remembering which Tornado
            handler carries which engine.io socket while the socket lives."""

            async def wait(self) -> Any:
                msg = await self.tornado_handler.get_next_message()
                if msg is None and self.sock is not None and self.sock.upgraded:
                    # Closed by the client: engine.io's reader ends on None as on
                    # OSError, but without the exception whose traceback would tie
                    # its frames, task and socket into a cycle only a full GC frees.
                    return None
                if not isinstance(msg, bytes | str):
                    raise OSError()
                if isinstance(msg, str) and (not msg or msg[0] not in "0123456"):
                    # engine.io's reader decodes outside its error handling: an
                    # undecodable packet would end it with a traceback and leave
                    # the session to its ping timeout. Disconnected instead.
                    sid = getattr(self.sock, "sid", "?")
                    guard.report(sid, "bad_packet", "undecodable engine.io packet, disconnected")
                    return None
                return msg

            async def send(self, message: Any) -> None:
                # engine.io's send, keeping the Future `write_message` returns: a
                # write still pending when the connection closes fails it, and
                # unread, each one logged "Task exception was never retrieved"
                # with two tracebacks — tens of thousands for one slow client.
                try:
                    written = self.tornado_handler.write_message(message, binary=isinstance(message, bytes))
                    written.add_done_callback(_read_result)
                except tornado.websocket.WebSocketClosedError:
                    raise eio_exceptions.EngineIOError() from None
                except tornado.iostream.StreamBufferFullError:
                    # Past SOCKET_MAX_PENDING_BYTES: engine.io's writer ends on
                    # the error and closes; the stream goes now.
                    conn = self.tornado_handler.ws_connection if self.tornado_handler is not None else None
                    if conn is not None:
                        guard.report(getattr(self.sock, "sid", "?"), "send_buffer_full",
                                     "more than %s bytes unsent, disconnected", conn.stream.max_write_buffer_size)
                        conn.stream.close()
                    raise OSError() from None

            async def __call__(self, environ: dict) -> None:
                sock = self.sock = getattr(self.handler, "__self__", None)
                # The request body reader engine.io put in the environ is an
                # instance of a class made per request; a websocket never reads
                # it, and dropping it now lets the young-generation GC free that
                # class instead of keeping it for as long as the socket lives.
                environ.pop("wsgi.input", None)
                sid = getattr(sock, "sid", None)
                handler = environ.get("tornado.handler")
                if sid is not None and handler is not None:
                    websockets[sid] = handler
                try:
                    await super().__call__(environ)
                finally:
                    if sid is not None and websockets.get(sid) is handler:
                        del websockets[sid]
                    # Drop what ties the request, the Tornado handler and this
                    # wrapper together, so refcounting frees them at once.
                    environ.clear()
                    self.environ = self.tornado_handler = self.handler = self.sock = None

        # A copy: the driver's dict is module-level, shared by every server.
        eio._async = {**eio._async, "websocket": TrackedWebSocket}

    async def open_direct(self, handler: tornado.websocket.WebSocketHandler) -> DirectSocket | None:
        """A websocket-first engine.io session on `handler` (see DirectSocket)."""
        return await open_direct_socket(self.server.eio, handler, self.pings, self.guard)

    def _queue_overflowed(self, queue: CappedQueue) -> None:
        """A polling (or upgrading) session's queue passed the cap: disconnect it."""
        eio = self.server.eio
        for sid, sock in eio.sockets.items():
            if sock.queue is queue:  # (once per offending socket: a scan is fine)
                self.guard.report(sid, "send_buffer_full", "more than %s bytes queued, disconnected", queue.limit)
                evict(eio, sid, self.websockets)
                return

    # Rooms per socket. BaseManager finds a leaving socket's rooms by scanning
    # every room (each socket has its own), so 10,000 sockets disconnecting
    # cost 10,000 × 10,000 steps — seconds of a stalled loop. Same behaviour,
    # one lookup.
    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        rooms = self._rooms_of.setdefault((namespace, sid), [])
        if room not in rooms:
            rooms.append(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None and room in rooms:
            rooms.remove(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self._rooms_of.pop((namespace, sid), None)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if namespace in pending and sid in pending[namespace]:
                pending[namespace].remove(sid)
                if not pending[namespace]:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list:
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, wait: bool = True, **kwargs: Any) -> None:
        """`wait=False` (the Notifier's emits): returns once the event has its
        place in the delivery order — written, or queued behind the broadcasts
        in progress — without waiting for a long broadcast to be written. An
        HTTP answer then never waits for a fan-out, and per socket the order
        of events is still the order of the emits."""
        if callback is not None:
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, to=to, **kwargs)
        job = self.prepare(event, data, namespace, to or room, skip_sid)
        if job is None:
            return
        if not self._jobs and len(job.recipients) <= SLICE:
            self.deliver_slice(job)  # the common per-user case: now, nothing ahead of it
            return
        if wait:
            job.done = asyncio.get_running_loop().create_future()
        self._jobs.append(job)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._deliver_jobs())
        if job.done is not None:
            await job.done

    async def drained(self) -> None:
        """Returns once every event emitted so far has been written (shutdown:
        the events of the last requests still reach everyone)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    def prepare(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> Delivery | None:
        """Encodes and frames the event once and takes the list of recipients now:
        connected sockets of `room` (all when None), minus `skip_sid`."""
        if namespace not in self.rooms:
            return None
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
        recipients = [eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid not in skip]
        return Delivery(frame, eio_pkts, recipients)

    def deliver_slice(self, job: Delivery) -> None:
        """Writes the job to its next SLICE recipients, without yielding."""
        sockets = self.server.eio.sockets
        websockets = self.websockets
        frame, eio_pkts = job.frame, job.eio_pkts
        end = min(job.next + SLICE, len(job.recipients))
        fast = queued = 0
        for eio_sid in job.recipients[job.next:end]:
            sock = sockets.get(eio_sid)
            if sock is None or sock.closing or sock.closed:
                continue  # gone since the job was prepared
            if type(sock) is DirectSocket:  # nothing queued, ever: write now
                if frame is not None:
                    sock.write_frame(frame)
                else:
                    for p in eio_pkts:
                        sock.write(p)
                fast += 1
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
                    except tornado.iostream.StreamBufferFullError:  # SOCKET_MAX_PENDING_BYTES
                        self.guard.report(eio_sid, "send_buffer_full", "more than %s bytes unsent, disconnected",
                                          conn.stream.max_write_buffer_size)
                        conn.stream.close()
                        continue
            for p in eio_pkts:
                sock.queue.put_nowait(p)  # where engine.io's own send would put it
            queued += 1
        job.next = end
        self.fast_deliveries += fast
        self.queued_deliveries += queued

    async def _deliver_jobs(self) -> None:
        """Jobs in the order they were emitted, a slice at a time; the loop runs
        other work between slices. Per socket, events keep their emit order:
        every event of this manager goes through here once anything is queued."""
        jobs = self._jobs
        while jobs:
            job = jobs[0]
            try:
                self.deliver_slice(job)
            except Exception as exc:  # never leave later jobs or their emitters waiting
                log.exception("Delivery of an event failed")
                job.next = len(job.recipients)
                if job.done is not None and not job.done.done():
                    job.done.set_exception(exc)
            if job.next >= len(job.recipients):
                jobs.popleft()
                if job.done is not None and not job.done.done():
                    job.done.set_result(None)
            if jobs:
                await asyncio.sleep(0)


class FastRedisManager(socketio.AsyncRedisManager, FastAsyncManager):
    """`AsyncRedisManager` whose local delivery — of this process's own emits
    and of those relayed from other processes (`_handle_emit` →
    `super().emit`) — is `FastAsyncManager.emit`. MRO: FastRedisManager,
    AsyncRedisManager, AsyncPubSubManager, FastAsyncManager, AsyncManager."""

    lost_relays = 0  # messages `_publish` gave up on (Redis unreachable); /metrics cyberhub_relay_lost_total

    async def _publish(self, data: Any) -> Any:
        # AsyncRedisManager._publish logs "giving up" and returns None when both
        # attempts fail; a publish that reached Redis returns its receiver count.
        sent = await super()._publish(data)
        if sent is None:
            self.lost_relays += 1
        return sent
