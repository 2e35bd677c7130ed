"""The library internals cyberhub/realtime/fanout.py relies on, one assertion each.

Fails after an upgrade of python-socketio, python-engineio or tornado that
changes one of them: re-check the fast path against the new version (and the
ordering tests in tests/test_fanout.py), then update CHECKED_VERSIONS.
"""

from __future__ import annotations

import asyncio
import inspect

import engineio
import engineio.base_server
import pytest
import socketio
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket
from engineio import async_socket
from engineio import packet as eio_packet
from engineio.async_drivers import tornado as eio_tornado
from socketio import async_pubsub_manager, base_manager

from cyberhub.realtime import direct_socket, fanout, wsframes


def source(obj: object) -> str:
    """The object's source with all whitespace runs made one space."""
    return " ".join(inspect.getsource(obj).split())


def flat(fragment: str) -> str:
    return " ".join(fragment.split())


def test_installed_versions_are_the_checked_ones():
    assert wsframes.installed_versions() == wsframes.CHECKED_VERSIONS


async def test_text_frame_is_what_tornado_writes_for_a_server_message():
    """Frames built once here must be byte-for-byte those of write_message (no mask, no compression)."""
    written: list[bytes] = []

    class Stream:
        def write(self, data: bytes) -> None:
            written.append(bytes(data))

    class Handler:
        pass

    params = tornado.websocket._WebSocketParams()
    proto = tornado.websocket.WebSocketProtocol13(Handler(), mask_outgoing=False, params=params)
    proto.stream = Stream()  # type: ignore[assignment]
    assert proto._compressor is None and proto.mask_outgoing is False
    for size in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        message = "x" * size
        written.clear()
        proto.write_message(message)
        assert written == [wsframes.text_frame(message.encode())], size


def test_engineio_websocket_wrapper_and_upgrade_contract():
    # The driver's websocket class is looked up per server in `_async` and called
    # as cls(socket._websocket_handler, server), then awaited with the environ.
    assert flat("self.server._async['websocket']( self._websocket_handler, self.server)") in \
        source(async_socket.AsyncSocket._upgrade_websocket)
    assert "return await ws(environ)" in source(async_socket.AsyncSocket._upgrade_websocket)
    assert eio_tornado._async["websocket"] is eio_tornado.WebSocket
    params = list(inspect.signature(eio_tornado.WebSocket.__init__).parameters)
    assert params == ["self", "handler", "server"]
    call = source(eio_tornado.WebSocket.__call__)
    assert "self.tornado_handler = environ['tornado.handler']" in call and "await self.handler(self)" in call
    # wait(): a None message (closed) is the only case fanout's wait() changes.
    wait = source(eio_tornado.WebSocket.wait)
    assert "get_next_message()" in wait and "raise OSError()" in wait
    reader = source(async_socket.AsyncSocket._websocket_handler)
    assert "if p is None:" in reader and "# connection closed by client" in reader
    # the request body reader engine.io puts in the environ is only read by polling POSTs
    assert "environ['wsgi.input'].read(length)" in source(async_socket.AsyncSocket.handle_post_request)


def test_engineio_writer_empties_the_queue_before_writing_without_yielding():
    """`queue._unfinished_tasks == 0` must mean: everything queued is in Tornado's stream."""
    poll = source(async_socket.AsyncSocket.poll)
    assert poll.count("self.queue.task_done()") == 2
    reader = source(async_socket.AsyncSocket._websocket_handler)
    assert "packets = await self.poll()" in reader
    assert "for pkt in packets: await ws.send(pkt.encode())" in reader
    send = source(eio_tornado.WebSocket.send)
    assert "self.tornado_handler.write_message(" in send and "await" not in send.split(":", 1)[1]
    # `upgrading` holds sends during the upgrade; `upgraded` is set before the writer starts
    assert "self.upgrading = True" in reader and "self.upgraded = True" in reader
    assert "writer_task = asyncio.ensure_future(writer())" in reader


async def test_engineio_queue_is_an_unbounded_asyncio_queue_counting_unfinished_tasks():
    server = engineio.AsyncServer(async_mode="tornado")
    queue = server.create_queue()
    assert type(queue) is asyncio.Queue and queue.maxsize == 0
    assert queue._unfinished_tasks == 0
    queue.put_nowait(1)
    assert queue._unfinished_tasks == 1
    queue.get_nowait()
    assert queue._unfinished_tasks == 1  # taken but not yet written
    queue.task_done()
    assert queue._unfinished_tasks == 0
    sock = async_socket.AsyncSocket(server, "sid")
    for name in ("queue", "upgraded", "upgrading", "closing", "closed", "sid", "connected"):
        assert hasattr(sock, name), name
    assert "self.queue.put(pkt)" in source(async_socket.AsyncSocket.send)


def test_tornado_connection_and_stream_attributes():
    write_message = source(tornado.websocket.WebSocketHandler.write_message)
    assert "self.ws_connection is None or self.ws_connection.is_closing()" in write_message
    frame = source(tornado.websocket.WebSocketProtocol13._write_frame)
    assert "return self.stream.write(frame)" in frame and "if self.mask_outgoing:" in frame
    assert "if self._compressor:" in source(tornado.websocket.WebSocketProtocol13.write_message)
    init = source(tornado.iostream.BaseIOStream.__init__)
    assert "self._write_buffer = _StreamBuffer()" in init
    assert "return self.socket.send(data)" in source(tornado.iostream.IOStream.write_to_fd)
    assert "__len__" in vars(tornado.iostream._StreamBuffer)


def test_socketio_manager_contract():
    assert "yield from participants.items()" in source(base_manager.BaseManager.get_participants)
    manager = socketio.AsyncManager()
    for name in ("rooms", "pending_connect", "pending_disconnect", "callbacks"):
        assert hasattr(manager, name), name
    # relayed events are delivered through super().emit, i.e. FastAsyncManager.emit
    handle = source(async_pubsub_manager.AsyncPubSubManager._handle_emit)
    assert "await super().emit(message['event'], data," in handle
    local = source(async_pubsub_manager.AsyncPubSubManager.emit)
    assert "return await super().emit(" in local and "await self._handle_emit(message)" in local
    mro = fanout.FastRedisManager.__mro__
    assert mro.index(async_pubsub_manager.AsyncPubSubManager) < mro.index(fanout.FastAsyncManager) \
        < mro.index(socketio.AsyncManager)
    # Rooms change only through these; fanout keeps its per-socket index in step with them.
    pre_connect = source(base_manager.BaseManager.pre_connect)
    assert "self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)" in pre_connect
    disconnect = source(base_manager.BaseManager.basic_disconnect)
    for fragment in ("self.basic_leave_room(sid, namespace, room)", "del self.callbacks[sid]",
                     "self.pending_connect[namespace].remove(sid)", "self.pending_disconnect[namespace].remove(sid)"):
        assert fragment in disconnect, fragment


@pytest.mark.parametrize("rooms", [["a"], ["a", "b"], []])
async def test_rooms_index_behaves_as_the_base_manager(rooms):
    """Same rooms, same get_rooms, same state after a disconnect, as socketio.AsyncManager."""
    class Server:
        eio = engineio.AsyncServer(async_mode="tornado")

    async def run(manager: socketio.AsyncManager) -> list:
        manager.server = Server()
        names = {}
        seen = []
        for eio_sid in ("e1", "e2"):
            sid = await manager.pre_connect(eio_sid, "/")
            names[sid] = eio_sid
            await manager.connect(sid, "/")
            for room in rooms:
                manager.basic_enter_room(sid, "/", room)
        first, second = list(names)
        label = lambda r: names.get(r, r)  # noqa: E731
        seen.append(sorted(map(label, manager.get_rooms(first, "/")), key=str))
        manager.basic_leave_room(first, "/", "a")
        seen.append(sorted(map(label, manager.get_rooms(first, "/")), key=str))
        manager.pre_disconnect(first, "/")
        manager.basic_disconnect(first, "/")
        seen.append({str(label(r)): sorted(p.values()) for r, p in manager.rooms.get("/", {}).items()})
        seen.append(sorted(map(label, manager.get_rooms(second, "/")), key=str))
        seen.append((manager.pending_connect, manager.pending_disconnect, manager.is_connected(first, "/")))
        return seen

    assert await run(fanout.FastAsyncManager()) == await run(socketio.AsyncManager())


# -- cyberhub/realtime/direct_socket.py: websocket-first sessions ------------------------------


def test_engineio_connect_is_what_open_direct_socket_does():
    connect = source(engineio.AsyncServer._handle_connect)
    for fragment in (
        "if self.start_service_task:", "self.start_service_task = False",
        "self.service_task_handle = self.start_background_task( self._service_task)",
        "sid = self.generate_id()", "self.sockets[sid] = s",
        "'sid': sid,", "'upgrades': self._upgrades(sid, transport),",
        "'pingTimeout': int(self.ping_timeout * 1000),",
        "'pingInterval': int( self.ping_interval + self.ping_interval_grace_period) * 1000,",
        "'maxPayload': self.max_http_buffer_size,",
        "ret = await self._trigger_event('connect', sid, environ, run_async=False)",
        "if ret is not None and ret is not True:", "s.schedule_ping()",
    ):
        assert flat(fragment) in connect, fragment
    # a websocket-first session is offered no upgrade
    server = engineio.AsyncServer(async_mode="tornado")
    server.sockets["sid"] = async_socket.AsyncSocket(server, "sid")
    assert server._upgrades("sid", "websocket") == [] and server._upgrades("sid", "polling") == ["websocket"]
    request = source(engineio.AsyncServer.handle_request)
    assert "if sid is None and query.get('EIO') != ['4']:" in request
    assert "if transport not in self.transports:" in request
    assert "or transport == upgrade_header == 'websocket':" in request


def test_engineio_socket_receive_ping_and_close_contract():
    receive = source(async_socket.AsyncSocket.receive)
    assert "if pkt.packet_type == packet.PONG: self.schedule_ping()" in receive
    assert flat("await self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)") in receive
    timeout = source(async_socket.AsyncSocket.check_ping_timeout)
    assert "raise exceptions.SocketIsClosedError()" in timeout
    assert flat("await self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)") in timeout
    close = source(async_socket.AsyncSocket.close)
    for fragment in ("self.closing = True", "await self.server._trigger_event( 'disconnect', self.sid,",
                     "if not abort: await self.send(packet.Packet(packet.CLOSE))", "self.closed = True"):
        assert flat(fragment) in close, fragment
    ping = source(async_socket.AsyncSocket.schedule_ping)
    assert "if self.last_ping:" in ping and "self.last_ping = None" in ping
    send_ping = source(async_socket.AsyncSocket._send_ping)
    assert "await asyncio.sleep(self.server.ping_interval)" in send_ping
    assert "self.last_ping = time.time()" in send_ping
    # the service task closes sockets whose pong is late, through check_ping_timeout
    assert "await s.check_ping_timeout()" in source(engineio.AsyncServer._service_task)
    # DirectSocket sets every attribute BaseSocket.__init__ sets, except the queue
    server = engineio.AsyncServer(async_mode="tornado")
    stock = set(vars(async_socket.AsyncSocket(server, "a")))
    direct = set(vars(direct_socket.DirectSocket(server, "b", None, direct_socket.PingScheduler(1.0))))
    assert stock - {"queue"} <= direct and "queue" in stock


def test_engineio_tornado_handler_queue_is_only_its_websocket_reader():
    handler = eio_tornado.get_tornado_handler(engineio.AsyncServer(async_mode="tornado"))
    assert "self.receive_queue = asyncio.Queue()" in source(handler.__init__)
    assert "await self.receive_queue.put(message)" in source(handler.on_message)
    assert "return await self.receive_queue.get()" in source(handler.get_next_message)
    assert "self.receive_queue.put_nowait(None)" in source(handler.on_close)
    assert "asyncio.ensure_future(engineio_server.handle_request(self))" in source(handler.open)


class _Request:
    """The attributes of a Tornado HTTPServerRequest translate_request reads."""

    def __init__(self, uri: str, headers: dict[str, str]) -> None:
        self.method, self.version, self.body = "GET", "HTTP/1.1", b""
        self.path, _, self.query = uri.partition("?")
        self.headers = tornado.httputil.HTTPHeaders(headers)


@pytest.mark.parametrize("uri", ["/socket.io/?EIO=4&transport=websocket", "/socket.io/", "//x/socket.io/?a=b"])
def test_websocket_environ_is_engineios_translate_request(uri):
    class Handler:
        request = _Request(uri, {"Host": "h", "Upgrade": "websocket", "Content-Type": "text/plain",
                                 "Content-Length": "0", "X-Forwarded-Proto": "https", "Sec-WebSocket-Key": "k"})

    handler = Handler()
    stock = eio_tornado.translate_request(handler)
    assert type(stock.pop("wsgi.input")).__name__ == "AwaitablePayload"
    assert direct_socket.websocket_environ(handler) == stock
    polling = direct_socket.polling_environ(handler)
    assert type(polling.pop("wsgi.input")) is direct_socket.RequestBody
    assert polling == stock


async def test_the_polling_body_reader_reads_as_engineios():
    for length in (None, 0, 3, 100):
        ours, theirs = direct_socket.RequestBody(b"4hello"), eio_tornado.translate_request(_with_body(b"4hello"))
        assert await ours.read(length) == await theirs["wsgi.input"].read(length)
        assert await ours.read() == await theirs["wsgi.input"].read()


def test_the_server_translates_requests_with_one_body_class(live):
    assert live.services.sio.eio._async["translate_request"] is direct_socket.polling_environ
    assert eio_tornado._async["translate_request"] is eio_tornado.translate_request  # the module's own untouched


def _with_body(body: bytes) -> object:
    class Handler:
        request = _Request("/socket.io/?EIO=4&transport=polling", {"Host": "h"})

    Handler.request.body = body
    return Handler()


def test_tornado_reads_the_request_only_before_open_and_awaits_on_message():
    accept = source(tornado.websocket.WebSocketProtocol13._accept_connection)
    opened = accept.index("open_result = handler.open(")
    assert accept.rfind("handler.request.headers", 0, opened) > 0
    assert "request" not in accept[opened:]
    loop = source(tornado.websocket.WebSocketProtocol13._receive_frame)
    assert "handled_future = self._handle_message(opcode, data)" in loop and "await handled_future" in loop
    assert "return self._run_callback(self.handler.on_message, decoded)" in \
        source(tornado.websocket.WebSocketProtocol13._handle_message)
    # on_message may answer None (handled at once, no task) or an awaitable (run, then awaited)
    run = source(tornado.websocket.WebSocketProtocol._run_callback)
    assert flat("result = callback(*args, **kwargs)") in run and flat("if result is None: return None") in run
    assert "self.ui = None" in source(tornado.web.RequestHandler._break_cycles)
    assert "self._headers = httputil.HTTPHeaders(" in source(tornado.web.RequestHandler.clear)
    # trim_opened_request drops the request's headers and HTTP/1 connection after open():
    # what runs later — frames, pings, writes, the close, logging an error — never reads them.
    proto, handler = tornado.websocket.WebSocketProtocol13, tornado.websocket.WebSocketHandler
    for later in (proto._receive_frame_loop, proto._receive_frame, proto._handle_message, proto.close,
                  proto.on_connection_close, proto._abort, proto.write_message, proto._write_frame,
                  proto.start_pinging, proto.periodic_ping, handler.on_connection_close,
                  handler.on_ws_connection_close, handler.close, handler.write_message, handler._break_cycles):
        assert "request" not in source(later), later.__qualname__
    assert "request.headers" not in source(tornado.web.RequestHandler.log_exception)
    assert "request.connection" not in source(tornado.web.RequestHandler.log_exception)
    assert flat("self.request.method, self.request.uri, self.request.remote_ip") in \
        source(tornado.web.RequestHandler._request_summary)
    assert "headers" not in source(tornado.httputil.HTTPServerRequest.__repr__)
    assert tornado.websocket.WebSocketProtocol13(
        type("H", (), {})(), mask_outgoing=False, params=tornado.websocket._WebSocketParams())._compressor is None


def test_engineio_never_hands_a_direct_sockets_traffic_to_its_queue():
    """Polling GETs/POSTs and upgrades naming an upgraded socket's sid are refused,
    so a DirectSocket's queue, poll() and handle_get_request() are never reached;
    every send goes through socket.send, every server close through socket.close."""
    request = source(engineio.AsyncServer.handle_request)
    get_part, post_part = request.split("elif method == 'POST':")
    assert "elif socket.upgraded:" in get_part and "r = self._bad_request('Unexpected HTTP request')" in get_part
    assert "elif not socket.upgraded: try: await socket.handle_post_request(environ)" in post_part
    assert "await socket.send(pkt)" in source(engineio.AsyncServer.send_packet)
    assert "await socket.close(reason=self.reason.SERVER_DISCONNECT)" in source(engineio.AsyncServer.disconnect)
    assert "if s.closed: del self.sockets[sid]" in flat(source(engineio.base_server.BaseServer._get_socket))
    send = source(async_socket.AsyncSocket.send)
    assert send.index("await self.check_ping_timeout()") < send.index("await self.queue.put(pkt)")
    assert isinstance(eio_packet.Packet(eio_packet.MESSAGE, "x").encode(), str)
    assert eio_packet.Packet(eio_packet.MESSAGE, b"x").encode() == b"x"


def test_socketio_sends_connect_before_the_socket_stops_being_pending():
    handle = source(socketio.AsyncServer._handle_connect)
    sent = handle.index(flat("await self._send_packet(eio_sid, self.packet_class( packet.CONNECT, {'sid': sid}"))
    assert sent < handle.index("await self.manager.connect(sid, namespace)", sent)
    assert "self.pending_connect[namespace].remove(sid)" in flat(source(base_manager.BaseManager.connect))


def test_tornado_is_closing_covers_a_closed_stream():
    assert "return self.stream.closed() or self.client_terminated or self.server_terminated" in \
        source(tornado.websocket.WebSocketProtocol13.is_closing)


# -- issue 20: per-client limits (pending.py, reaper.py, badinput.py, server/listener.py) ------


def test_tornado_write_refuses_past_max_write_buffer_size_before_buffering():
    write = source(tornado.iostream.BaseIOStream.write)
    for fragment in ("self.max_write_buffer_size is not None",
                     "and len(self._write_buffer) + len(data) > self.max_write_buffer_size",
                     'raise StreamBufferFullError("Reached maximum write buffer size")'):
        assert flat(fragment) in write, fragment
    assert write.index("raise StreamBufferFullError") < write.index("self._write_buffer.append(data)")
    assert "self.max_write_buffer_size = max_write_buffer_size" in source(tornado.iostream.BaseIOStream.__init__)


def test_engineio_queues_come_from_create_queue_and_asyncio_get_goes_through_get_nowait():
    from engineio import base_socket

    assert "self.queue = self.server.create_queue()" in source(base_socket.BaseSocket.__init__)
    assert "return self.get_nowait()" in source(asyncio.Queue.get)
    assert "return self.put_nowait(item)" in source(asyncio.Queue.put)


def test_engineio_shutdown_stops_the_task_registered_as_its_service_task():
    shutdown = source(engineio.AsyncServer.shutdown)
    assert flat("if self.service_task_event: # pragma: no cover self.service_task_event.set() "
                "await self.service_task_handle") in shutdown
    # monitor_clients=False: engine.io starts no monitor of its own
    assert not engineio.AsyncServer(async_mode="tornado", monitor_clients=False).start_service_task


def test_socketio_decodes_client_packets_with_its_packet_class_and_registers_eio_handlers_with_on():
    message = source(socketio.AsyncServer._handle_eio_message)
    assert "pkt = self.packet_class(encoded_packet=data)" in message
    sio = socketio.AsyncServer(async_mode="tornado")
    assert set(sio.eio.handlers) >= {"connect", "message", "disconnect"}


def test_tcpserver_add_sockets_is_what_the_guarded_listener_does():
    import tornado.tcpserver

    add = source(tornado.tcpserver.TCPServer.add_sockets)
    for fragment in ("self._sockets[sock.fileno()] = sock",
                     "self._handlers[sock.fileno()] = add_accept_handler( sock, self._handle_connection )"):
        assert flat(fragment) in add, fragment
    assert "self._handlers.pop(fd)()" in source(tornado.tcpserver.TCPServer.stop)


def test_engineio_tornado_websocket_send_is_write_message():
    send = source(eio_tornado.WebSocket.send)
    for fragment in ("self.tornado_handler.write_message( message, binary=isinstance(message, bytes))",
                     "except tornado.websocket.WebSocketClosedError: raise exceptions.EngineIOError()"):
        assert flat(fragment) in send, fragment


# -- issue 18: a websocket's frames read in a task of their own (realtime/ws_receive.py) ------


def test_tornado_builds_a_plain_websocketprotocol13_in_get_websocket_protocol():
    build = source(tornado.websocket.WebSocketHandler.get_websocket_protocol)
    assert "return WebSocketProtocol13(self, False, params)" in build


def test_tornado_accept_connection_ends_by_awaiting_the_frame_loop_after_open():
    accept = source(tornado.websocket.WebSocketProtocol13._accept_connection)
    for fragment in ("handler.finish()", "self.stream = handler._detach_stream()",
                     "open_result = handler.open(*handler.open_args, **handler.open_kwargs)",
                     "await self._receive_frame_loop()"):
        assert flat(fragment) in accept, fragment
    assert accept.index("handler.finish()") < accept.index("handler.open(") < accept.index("_receive_frame_loop")
    assert accept.rstrip().endswith("await self._receive_frame_loop()")  # its last step


def test_tornado_frame_loop_handles_a_closed_stream_and_reports_the_close_itself():
    loop = source(tornado.websocket.WebSocketProtocol13._receive_frame_loop)
    for fragment in ("except StreamClosedError: self._abort()",
                     "finally: self.handler.on_ws_connection_close(self.close_code, self.close_reason)"):
        assert flat(fragment) in loop, fragment


def test_tornado_accept_connection_aborts_on_cancellation_and_logs_a_valueerror_at_debug():
    accept = source(tornado.websocket.WebSocketProtocol13.accept_connection)
    assert flat("try: await self._accept_connection(handler) "
                "except asyncio.CancelledError: self._abort() return "
                "except ValueError: "
                'gen_log.debug("Malformed WebSocket request received", exc_info=True) '
                "self._abort() return") in accept


def test_tornado_execute_only_finishes_an_unfinished_request_after_the_method():
    execute = source(tornado.web.RequestHandler._execute)
    assert flat("if result is not None: result = await result "
                "if self._auto_finish and not self._finished: self.finish()") in execute


def test_receive_in_own_task_swaps_only_tornados_own_protocol():
    from cyberhub.realtime.ws_receive import ReceiveInOwnTask, receive_in_own_task

    class Handler:
        pass

    params = tornado.websocket._WebSocketParams()
    proto = tornado.websocket.WebSocketProtocol13(Handler(), mask_outgoing=False, params=params)
    assert receive_in_own_task(proto) is proto and type(proto) is ReceiveInOwnTask
    # adds behaviour only: no state of its own, so swapping the class of a built protocol is sound
    assert "__init__" not in ReceiveInOwnTask.__dict__ and "__slots__" not in ReceiveInOwnTask.__dict__

    class Other(tornado.websocket.WebSocketProtocol13):
        pass

    other = Other(Handler(), mask_outgoing=False, params=params)
    assert type(receive_in_own_task(other)) is Other
    assert receive_in_own_task(None) is None


class FailingFrames:
    """A stand-in stream whose every read raises `error`, and the handler
    callbacks the frame loop makes: what it logged, when the close was
    reported, when the stream was closed (aborted)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.logged: list[BaseException] = []
        self.reported, self.close_reported, self.closed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def read_bytes(self, n: int) -> bytes:
        raise self.error

    def close(self) -> None:
        self.closed.set()

    def on_ws_connection_close(self, code: object, reason: object) -> None:
        self.close_reported.set()

    def log_exception(self, typ: type, value: BaseException, tb: object) -> None:
        self.logged.append(value)
        self.reported.set()

    def protocol(self) -> tornado.websocket.WebSocketProtocol13:
        from cyberhub.realtime.ws_receive import receive_in_own_task

        proto = receive_in_own_task(tornado.websocket.WebSocketProtocol13(
            self, mask_outgoing=False, params=tornado.websocket._WebSocketParams()))
        proto.stream = self  # type: ignore[assignment]
        return proto


async def test_an_error_escaping_the_frame_loop_is_logged_as_the_request_would_log_it():
    frames = FailingFrames(RuntimeError("not a closed stream"))
    assert await frames.protocol()._receive_frame_loop() is None  # returns at once: the loop runs in its own task
    await asyncio.wait_for(frames.close_reported.wait(), 5)
    await asyncio.wait_for(frames.reported.wait(), 5)
    assert [str(e) for e in frames.logged] == ["not a closed stream"]


async def test_a_malformed_frame_aborts_the_connection_with_a_debug_line_only(caplog):
    """As Tornado's accept_connection did around the loop: a ValueError (a client's
    malformed frame) is not logged as a server error."""
    frames = FailingFrames(ValueError("a malformed frame"))
    with caplog.at_level("DEBUG", logger="tornado.general"):
        await frames.protocol()._receive_frame_loop()
        await asyncio.wait_for(frames.closed.wait(), 5)  # aborted
    assert frames.logged == []
    assert [r.getMessage() for r in caplog.records if r.name == "tornado.general"] == \
        ["Malformed WebSocket request received"]
