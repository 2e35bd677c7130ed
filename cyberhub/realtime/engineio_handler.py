"""The Tornado handler mounted at /socket.io/ for websocket upgrades (a GET
with `Upgrade: websocket`): python-engineio's own handler
(`socketio.get_tornado_handler`) extended through subclassing only. Every
other /socket.io/ request — the polling transport — is served by
cyberhub/realtime/polling.py, which keeps the same limits.

What it adds:
- permessage-deflate off: per-socket zlib state costs ~150 KiB per connection
  and the frontend's messages are tiny;
- a websocket from an origin that is not allowed is refused before the upgrade
  (Tornado would accept it when Origin equals Host, then engine.io refuses the
  session and the socket hangs);
- a session that starts on the websocket runs as a DirectSocket
  (cyberhub/realtime/direct_socket.py): its messages come in through `on_message`, its
  end through `on_close`; so does a polling session once it upgrades to a
  websocket (cyberhub/realtime/socket_upgrade.py does the upgrade handshake
  here and swaps the session's socket); everything else keeps engine.io's
  own path;
- a request body (none is expected) is refused with 413 as soon as it passes
  SOCKET_MAX_BUFFER_BYTES, declared or streamed, and never kept;
- a websocket's stream holds at most SOCKET_MAX_PENDING_BYTES unsent
  (cyberhub/realtime/pending.py);
- its frames are read in a task of their own, so the upgrade request ends
  once the handshake is answered (cyberhub/realtime/ws_receive.py);
- a request that would open a new session past SOCKET_MAX_PER_ADDRESS or
  SOCKET_MAX_CONNECTIONS is answered 429 / 503 with the error envelope before
  engine.io sees it (cyberhub/realtime/admission.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import socketio
import tornado.iostream
import tornado.web
import tornado.websocket

from cyberhub.realtime.admission import check_before_body, too_large
from cyberhub.realtime.direct_socket import DirectSocket, can_open_directly, polling_environ
from cyberhub.realtime.fanout import FastAsyncManager
from cyberhub.realtime.pending import cap_stream
from cyberhub.realtime.socket_upgrade import PingTasks, PollingUpgrade, start_upgrade
from cyberhub.realtime.ws_receive import receive_in_own_task


def tornado_handler(sio: socketio.AsyncServer) -> type[tornado.web.RequestHandler]:
    base = socketio.get_tornado_handler(sio)
    limit: int = sio.eio.max_http_buffer_size

    manager = sio.manager
    guarded = isinstance(manager, FastAsyncManager)
    pending_limit = manager.max_pending_bytes if guarded else None
    ping_tasks = PingTasks(sio.eio)  # so an upgrade can end the polling socket's ping task
    # Every polling request's environ without a class made per request (direct_socket.RequestBody).
    # A copy of the driver's dict: the module-level one is shared by every server.
    sio.eio._async = {**sio.eio._async, "translate_request": polling_environ}

    @tornado.web.stream_request_body
    class EngineIOHandler(base):  # type: ignore[misc, valid-type]
        direct = False  # a websocket-first session: DirectSocket, no engine.io receive queue
        reserved_address: str | None = None  # a handshake's place under the session limits
        eio_socket: DirectSocket | None = None  # that session's socket while it lives
        upgrade: PollingUpgrade | None = None  # a polling session's upgrade handshake in progress

        def initialize(self, *args: Any, **kwargs: Any) -> None:
            self._chunks: list[bytes] = []
            self._received = 0
            self._refused = False

        @property
        def max_message_size(self) -> int:
            # Tornado refuses a longer websocket message while reading it (close
            # 1009) instead of buffering it for engine.io to refuse afterwards.
            return limit

        async def open(self, *args: Any, **kwargs: Any) -> None:
            if pending_limit is not None and self.ws_connection is not None:
                cap_stream(self.ws_connection.stream, pending_limit)
            if guarded and can_open_directly(sio.eio, self):
                # Websocket-first: no engine.io tasks or queues (cyberhub/realtime/direct_socket.py).
                self.direct = True
                del self.receive_queue
                await manager.open_direct(self)
                return
            upgrade = (start_upgrade(sio.eio, self, manager.pings, ping_tasks, sio.environ, manager.guard)
                       if guarded else None)
            if upgrade is not None:
                # A polling session upgrading: it ends as a DirectSocket too.
                self.direct = True
                del self.receive_queue
                self.upgrade = upgrade
                return
            await super().open(*args, **kwargs)

        def on_message(self, message: str | bytes) -> Awaitable[None] | None:
            # Not a coroutine function: Tornado makes a task of whatever awaitable
            # on_message returns, so the messages handled at once (the upgrade
            # handshake's, a DirectSocket's pongs) return None and cost no task.
            if not self.direct:
                return super().on_message(message)  # engine.io's own websocket path
            if self.eio_socket is not None:  # (None once the session has ended)
                return self.eio_socket.received(message)
            if self.upgrade is not None and self.upgrade.received(message) is not None:
                self.upgrade = None  # switched: this handler carries a DirectSocket now
            return None

        def on_close(self) -> None:
            self.release_reservation()
            if not self.direct:
                super().on_close()
            elif self.eio_socket is not None:
                self.eio_socket.transport_closed()
            elif self.upgrade is not None:
                self.upgrade.abandon()

        def get_compression_options(self) -> None:
            return None

        def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
            # Frames read in a task of their own: the upgrade request ends after
            # the handshake instead of staying suspended for the socket's life.
            return receive_in_own_task(super().get_websocket_protocol())

        def prepare(self) -> None:
            # (a reservation is released by release_reservation())
            self.reserved_address, refusal = check_before_body(
                manager.reserve_handshake if guarded else None, self.request, limit)
            if refusal is not None:
                self._refuse(*refusal)

        def data_received(self, chunk: bytes) -> None:
            if self._refused:  # answered already: drop whatever is still arriving
                return
            self._received += len(chunk)
            if self._received > limit:
                self._refuse_too_large()
            else:
                self._chunks.append(chunk)

        def _refuse_too_large(self) -> None:
            self._refuse(*too_large(limit))

        def _refuse(self, status: int, message: str, code: str) -> None:
            """Answer now; Tornado closes the connection after the answer because
            the body was not read to its end, and the kept chunks are dropped."""
            self._refused = True
            self._chunks.clear()
            self.set_status(status)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps({"success": False, "error": message, "code": code}))

        def release_reservation(self) -> None:
            """The handshake became a session (engine.io's connect event) or ended."""
            if self.reserved_address is not None:
                manager.admission.release(self.reserved_address)
                self.reserved_address = None

        def on_finish(self) -> None:
            self.release_reservation()
            super().on_finish()

        def on_connection_close(self) -> None:
            self.release_reservation()
            # WebSocketHandler's override does not resolve the streamed body's
            # future; without this a request cut off mid-body waits forever.
            future = getattr(self.request, "_body_future", None)
            if future is not None and not future.done():
                future.set_exception(tornado.iostream.StreamClosedError())
                future.exception()
            super().on_connection_close()

        def _take_body(self) -> None:
            self.request.body = b"".join(self._chunks)
            self._chunks = []

        async def get(self, *args: Any, **kwargs: Any) -> None:
            # Refuse a websocket from a foreign origin before the upgrade.
            origin = self.request.headers.get("Origin")
            upgrade = self.request.headers.get("Upgrade", "").lower() == "websocket"
            if upgrade and origin is not None and self.allowed_origins is not None \
                    and origin not in self.allowed_origins:
                self.set_status(403)
                self.finish("Origin not allowed")
                return
            self._take_body()
            await super().get(*args, **kwargs)

    return EngineIOHandler
