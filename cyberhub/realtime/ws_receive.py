"""A websocket's frames read in a task of its own, so that the HTTP request
that opened the websocket can end.

Tornado reads a websocket's frames at the bottom of the request that upgraded
it: `RequestHandler._execute` awaits the handler's `get`, which awaits
`WebSocketProtocol13.accept_connection`, which after the handshake and
`open()` awaits `_receive_frame_loop()` for as long as the socket lives. So
every idle socket kept that whole chain suspended: the request's task and
its done-callback, and the coroutine frames of `_execute`, engine.io's and
our `get`, Tornado's `get`, `accept_connection` and `_accept_connection` —
3.4 of an idle socket's 18.2 KiB of Python heap (tracemalloc,
bench/socket_memory.py; bench/README.md, issue 18).

`ReceiveInOwnTask` runs the same loop (Tornado's own, unchanged) in a task
of its own and returns at once, so the upgrade request finishes as soon as
the handshake has been answered and `open()` has run. Nothing else changes:
frames arrive through the same `on_message`, the end through the same
`on_ws_connection_close` / `on_close`, and errors are handled as around the
loop before: Tornado's `accept_connection` aborts the connection on a
cancellation, and on a `ValueError` (a malformed frame — a client can send
one, e.g. a close reason that is not UTF-8) also logs it at debug level
only; anything else is logged as the request would have logged it
(`log_exception`).

LIBRARY INTERNALS RELIED ON (checked against tornado 6.6.1;
tests/test_fanout_internals.py fails if one changes):
- `WebSocketHandler.get_websocket_protocol()` builds the connection's
  `WebSocketProtocol13`; its class is swapped for this subclass, which adds
  no state;
- `WebSocketProtocol13._accept_connection` answers the handshake
  (`handler.finish()`), detaches the stream, awaits `handler.open()` and, as
  its last step, `await self._receive_frame_loop()`;
- `_receive_frame_loop()` handles a closed stream itself (`_abort()`) and
  calls `handler.on_ws_connection_close(...)` in its `finally`;
- `WebSocketProtocol13.accept_connection`, around `_accept_connection`,
  catches `asyncio.CancelledError` (`_abort()`) and `ValueError` (a debug
  line on `tornado.general`, `_abort()`); everything else reached
  `RequestHandler._execute`, which logged it with `log_exception`;
- `RequestHandler._execute`, once the method returns, only calls `finish()`
  if the request is not finished (the handshake finished it).
"""

from __future__ import annotations

import asyncio
import sys

import tornado.websocket
from tornado.log import gen_log

_receiving: set[asyncio.Task] = set()  # referenced until done (asyncio keeps only weak ones)


class ReceiveInOwnTask(tornado.websocket.WebSocketProtocol13):
    """WebSocketProtocol13 whose frame loop runs in its own task (module docstring)."""

    async def _receive_frame_loop(self) -> None:
        task = asyncio.ensure_future(self._receive_frames())
        _receiving.add(task)
        task.add_done_callback(_receiving.discard)

    async def _receive_frames(self) -> None:
        """Tornado's loop, with the error handling that surrounded it."""
        try:
            await super()._receive_frame_loop()
        except asyncio.CancelledError:
            self._abort()
            raise
        except ValueError:  # as accept_connection: a client's malformed frame is no server error
            gen_log.debug("Malformed WebSocket request received", exc_info=True)
            self._abort()
        except Exception:  # as RequestHandler._execute did
            self.handler.log_exception(*sys.exc_info())


def receive_in_own_task(protocol: tornado.websocket.WebSocketProtocol | None
                        ) -> tornado.websocket.WebSocketProtocol | None:
    """For `get_websocket_protocol` overrides: Tornado's protocol, reading its
    frames in a task of its own (any other protocol is returned as it is)."""
    if type(protocol) is tornado.websocket.WebSocketProtocol13:
        protocol.__class__ = ReceiveInOwnTask
    return protocol
