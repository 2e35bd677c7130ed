"""A websocket's frames read in a task of its own, so that the HTTP request
that opened the websocket can end.

Tornado reads a websocket's frames at the bottom of the request that upgraded
it: `RequestHandler._execute` awaits the handler's `get`, which awaits
`WebSocketProtocol13.accept_connection`, which after the handshake and
`open()` awaits `_receive_frame_loop()` for as long as the socket lives. So
every idle socket kept that whole chain suspended: the request's task and
its done-callback, and the coroutine frames of `_execute`, engine.io's and
our `get`, Tornado's `get`, `accept_connection` and `_accept_connection` —
about 4 KiB of an idle socket's ~18 KiB of Python heap (tracemalloc,
bench/socket_memory.py; bench/README.md, issue 18).

`ReceiveInOwnTask` runs the same loop (Tornado's own, unchanged) in a task
of its own and returns at once, so the upgrade request finishes as soon as
the handshake has been answered and `open()` has run. Nothing else changes:
frames arrive through the same `on_message`, the end through the same
`on_ws_connection_close` / `on_close`. An exception the loop does not handle
itself is logged as the request would have logged it (`log_exception`).

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
- `RequestHandler._execute`, once the method returns, only calls `finish()`
  if the request is not finished (the handshake finished it).
"""

from __future__ import annotations

import asyncio

import tornado.websocket

_receiving: set[asyncio.Task] = set()  # referenced until done (asyncio keeps only weak ones)


class ReceiveInOwnTask(tornado.websocket.WebSocketProtocol13):
    """WebSocketProtocol13 whose frame loop runs in its own task (module docstring)."""

    async def _receive_frame_loop(self) -> None:
        task = asyncio.ensure_future(super()._receive_frame_loop())
        _receiving.add(task)
        task.add_done_callback(self._receiving_done)

    def _receiving_done(self, task: asyncio.Task) -> None:
        _receiving.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            self.handler.log_exception(type(error), error, error.__traceback__)


def receive_in_own_task(protocol: tornado.websocket.WebSocketProtocol | None
                        ) -> tornado.websocket.WebSocketProtocol | None:
    """For `get_websocket_protocol` overrides: Tornado's protocol, reading its
    frames in a task of its own (any other protocol is returned as it is)."""
    if type(protocol) is tornado.websocket.WebSocketProtocol13:
        protocol.__class__ = ReceiveInOwnTask
    return protocol
