"""engine.io's HTTP long-polling requests, served without a Tornado RequestHandler.

The frontend connects with plain `io(url)`: socket.io-client opens on polling
and upgrades, so every client makes three or four polling requests before its
websocket (the handshake GET, the CONNECT POST, the GET that brings the
CONNECT back, the GET the upgrade releases) — the official Node client each on
a new connection. Through engine.io's Tornado handler (a WebSocketHandler)
each of them built a handler with its own receive queue, was routed past
every REST rule, got default headers, an access-log line and Tornado's flush:
35 % of the server's samples while 5,000 default clients connected, more than
engine.io itself (bench/README.md, issue 18).

Here a polling request is a bare `HTTPMessageDelegate` (`PollingRequest`),
chosen by a routing rule ahead of the REST routes (`PollingRequests.rule`)
for every /socket.io/ request but a websocket upgrade (a GET with `Upgrade:
websocket`, which still goes to cyberhub/realtime/engineio_handler.py). It keeps everything the handler did
for polling, in the same order:
- the session limits (SOCKET_MAX_PER_ADDRESS / SOCKET_MAX_CONNECTIONS,
  cyberhub/realtime/admission.py): a request that would open a session holds
  a reservation until engine.io's connect event takes it or the request ends;
- the body cap (SOCKET_MAX_BUFFER_BYTES, declared or streamed): 413 at once,
  nothing past the limit kept (python-engineio 4.15.1 answers a too-long
  body with `disconnect()`, which waits for a GET poll to drain the
  session's queue: with none outstanding the POST would hang with its body
  in memory);
- a POST whose body is not what a client sends closes its session
  (cyberhub/realtime/badinput.py);
- then engine.io's own `handle_request` does everything engine.io does (CORS,
  sessions, the handshake, long polls), and its answer is written straight to
  the connection (status, engine.io's headers, Content-Length, the payload).
Each answer is counted in the request metrics (route `/socket.io/`); only
refused ones (4xx / 5xx) get an access-log line: a polling client makes a
request every ping interval and one per message, which would drown the log.

LIBRARY INTERNALS RELIED ON (checked against tornado 6.6.1 and
python-engineio 4.15.1; tests/test_polling.py fails if one changes):
tornado
  - an Application rule may be a `tornado.routing.Rule` with a custom
    `Matcher` and a `Router` target, whose `find_handler(request)` returns
    the request's `HTTPMessageDelegate` (tornado.routing's documented
    extension point); the delegate then gets `headers_received`,
    `data_received` per chunk, `finish` once the body is complete, or
    `on_connection_close`;
  - `HTTP1Connection.write_headers(start_line, headers, chunk)` then
    `finish()` answers; it keeps the connection or closes it as the request
    asked, and closes it when the body was not read to its end; on a closed
    stream both are harmless.
python-engineio
  - `AsyncServer.handle_request(*args)` calls `_async['translate_request'](*args)`
    for the environ (direct_socket.polling_environ, which reads only
    `.request`) and answers through `_async['make_response'](status, headers,
    payload, environ)` with `environ['tornado.handler']` the first argument;
    `payload` is `bytes` or `str`;
  - python-socketio's connect handler (cyberhub/realtime/sockets.py) reads
    `environ['tornado.handler'].request.remote_ip` and calls its
    `release_reservation()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import engineio
import socketio
import tornado.httputil
import tornado.routing
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine, ResponseStartLine

from cyberhub.platform.logs import access_line
from cyberhub.realtime.admission import check_before_body, too_large
from cyberhub.realtime.badinput import polling_body_refusal
from cyberhub.realtime.eviction import evict
from cyberhub.realtime.fanout import FastAsyncManager

log = logging.getLogger("cyberhub.polling")

PATH = "/socket.io/"
ROUTE = PATH  # the metrics' route label, as the handler's
_tasks: set[asyncio.Task] = set()  # referenced until done (asyncio keeps only weak ones)

Observe = Callable[[str, str, int, float], None]  # Metrics.observe_request(method, route, status, seconds)


class PollingMatcher(tornado.routing.Matcher):
    """/socket.io/ requests other than a websocket upgrade (a GET asking for
    one): every POST is a polling one, whatever its headers say."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if request.path != PATH:
            return None
        if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        return {}


class PollingRequests(tornado.routing.Router):
    """Makes a PollingRequest for each matched request; installs its answer
    path in engine.io's driver table."""

    def __init__(self, sio: socketio.AsyncServer, observe: Observe | None = None) -> None:
        self.eio: engineio.AsyncServer = sio.eio
        self.limit: int = sio.eio.max_http_buffer_size
        manager = sio.manager
        self.manager: FastAsyncManager | None = manager if isinstance(manager, FastAsyncManager) else None
        self.observe = observe
        driver_answer = sio.eio._async["make_response"]

        def make_response(status: str, headers: list, payload: bytes | str, environ: dict) -> Any:
            target = environ.get("tornado.handler")
            if isinstance(target, PollingRequest):
                return target.answer(status, headers, payload)
            return driver_answer(status, headers, payload, environ)  # websocket requests: the Tornado handler

        # A copy of the driver's dict: the module-level one is shared by every server.
        sio.eio._async = {**sio.eio._async, "make_response": make_response}

    def rule(self) -> tornado.routing.Rule:
        return tornado.routing.Rule(PollingMatcher(), self)

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> PollingRequest:
        return PollingRequest(self, request)


class PollingRequest(tornado.httputil.HTTPMessageDelegate):
    """One engine.io polling request (module docstring)."""

    def __init__(self, requests: PollingRequests, request: HTTPServerRequest) -> None:
        self.requests = requests
        self.request = request
        self.connection = request.connection
        self._chunks: list[bytes] = []
        self._received = 0
        self.status = 0  # the answer's, once answered
        self.closed = False  # the client went away
        self.reserved_address: str | None = None

    # -- reading ----------------------------------------------------------------
    def headers_received(self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders) -> None:
        manager = self.requests.manager
        # (a reservation is released by release_reservation())
        self.reserved_address, refusal = check_before_body(
            manager.reserve_handshake if manager is not None else None, self.request, self.requests.limit)
        if refusal is not None:
            self.refuse(*refusal)

    def data_received(self, chunk: bytes) -> None:
        if self.status:  # answered already: drop whatever is still arriving
            return
        self._received += len(chunk)
        if self._received > self.requests.limit:
            self.refuse_too_large()
        else:
            self._chunks.append(chunk)

    def finish(self) -> None:
        if self.status:
            return
        self.request.body = b"".join(self._chunks)
        self._chunks = []
        task = asyncio.ensure_future(self._handle())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    def on_connection_close(self) -> None:
        self.closed = True
        self.release_reservation()

    async def _handle(self) -> None:
        requests = self.requests
        try:
            sid = self.request.query_arguments.get("sid")
            manager = requests.manager
            if manager is not None and self.request.method == "POST" and sid:
                session = sid[0].decode("latin-1")
                if session in requests.eio.sockets:
                    refusal = polling_body_refusal(self.request.body)
                    if refusal is not None:
                        manager.guard.report(session, "bad_packet", "%s, disconnected", refusal)
                        evict(requests.eio, session, manager.websockets)
                        self.refuse(400, "Malformed engine.io payload; session closed", "bad_packet")
                        return
            await requests.eio.handle_request(self)
        except Exception:
            log.exception("Socket.IO polling request failed: %s %s", self.request.method, self.request.path)
        finally:
            self.release_reservation()
            if not self.status:  # never leave the client waiting
                self.refuse(500, "Internal server error", "internal_error")

    # -- answering --------------------------------------------------------------
    def answer(self, status: str, headers: list[tuple[str, str]], payload: bytes | str) -> None:
        """engine.io's answer (its `make_response`), written to the connection."""
        body = payload.encode("utf-8") if isinstance(payload, str) else payload
        code = int(status.split(None, 1)[0])
        response_headers = HTTPHeaders()
        for name, value in headers:
            response_headers.add(name, value)
        self._write(code, response_headers, body)

    def refuse(self, status: int, message: str, code: str) -> None:
        """The error envelope, as the REST API answers. Sent before the body
        is read, the connection is closed after it (HTTP1Connection)."""
        body = json.dumps({"success": False, "error": message, "code": code}).encode()
        self._write(status, HTTPHeaders({"Content-Type": "application/json; charset=utf-8"}), body)

    def refuse_too_large(self) -> None:
        self._chunks.clear()
        self.refuse(*too_large(self.requests.limit))

    def _write(self, status: int, headers: HTTPHeaders, body: bytes) -> None:
        if self.status:
            return
        self.status = status
        self.release_reservation()
        if not self.closed:
            headers["Content-Length"] = str(len(body))
            if self.request.method == "HEAD":  # the headers of the answer a GET would get, no body
                body = b""
            reason = tornado.httputil.responses.get(status, "Unknown")
            self.connection.write_headers(ResponseStartLine("HTTP/1.1", status, reason), headers, body)
            self.connection.finish()
        self._record()

    def _record(self) -> None:
        request = self.request
        if self.requests.observe is not None:
            self.requests.observe(request.method or "", ROUTE, self.status, request.request_time())
        if self.status >= 400:
            access_line(self)  # type: ignore[arg-type]  # reads get_status() and request

    def get_status(self) -> int:
        """For the access line (cyberhub/platform/logs.access_line)."""
        return self.status

    # -- session limits -----------------------------------------------------------
    def release_reservation(self) -> None:
        """The handshake became a session (engine.io's connect event) or ended."""
        manager = self.requests.manager
        if self.reserved_address is not None and manager is not None:
            manager.admission.release(self.reserved_address)
            self.reserved_address = None
