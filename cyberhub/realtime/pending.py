"""SOCKET_MAX_PENDING_BYTES: what the server holds for one client that does
not read, on every path.

- websockets (websocket-first DirectSockets, engine.io's own websocket path,
  the fan-out's direct frame writes): Tornado's documented IOStream knob
  `max_write_buffer_size` is set on the connection's stream once it is a
  websocket (`cap_stream`). A write that would take the stream's unsent
  bytes past it raises `StreamBufferFullError` and is not buffered; the
  writer that sees it disconnects the client (`overflowed`). Everything
  written to the stream counts: events, the server's answers to the
  client's own packets (PONG, NOOP), Tornado's control frames;
- polling sessions: engine.io keeps their packets in a queue until the
  client's next GET. `CappedQueue` (engine.io's `create_queue` made to
  return one) counts the bytes queued; past the cap the packet is dropped,
  the queue emptied and its socket closed.

LIBRARY INTERNALS RELIED ON (tornado 6.6.1, python-engineio 4.15.1;
tests/test_fanout_internals.py fails if one changes):
  - `BaseIOStream.max_write_buffer_size` is read by every `write()` (its
    constructor argument, stored as that attribute); `write()` raises
    `StreamBufferFullError` before buffering anything when the unsent bytes
    plus the new ones would pass it; `len(IOStream._write_buffer)` is the
    unsent byte count;
  - `AsyncServer.create_queue()` makes every socket's queue
    (`BaseSocket.__init__`); asyncio.Queue's `put`/`get` go through
    `put_nowait`/`get_nowait` (CPython 3.11).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import tornado.iostream

# A packet whose data is not text or bytes (an OPEN's dict, None): counted
# as this much, a bound on its encoding.
OTHER_PACKET_BYTES = 256


def cap_stream(stream: tornado.iostream.IOStream, limit: int) -> None:
    stream.max_write_buffer_size = limit


def held_bytes(stream: tornado.iostream.IOStream) -> int:
    """Bytes Tornado holds unsent for this stream."""
    buffer = stream._write_buffer
    return len(buffer) if buffer is not None else 0


def packet_bytes(pkt: Any) -> int:
    data = getattr(pkt, "data", None)
    return len(data) + 1 if isinstance(data, str | bytes) else OTHER_PACKET_BYTES


class CappedQueue(asyncio.Queue):
    """An engine.io socket queue that holds at most `limit` bytes of packets.
    Past it the packet is dropped, the queue emptied, and `on_overflow(queue)`
    called once (it closes the socket)."""

    def __init__(self, limit: int, on_overflow: Callable[[CappedQueue], None]) -> None:
        super().__init__()
        self.limit = limit
        self.held = 0
        self.overflowed = False
        self._on_overflow = on_overflow

    def put_nowait(self, item: Any) -> None:
        if self.overflowed:
            if item is None:  # engine.io's "writer, stop" sentinel still goes through
                super().put_nowait(item)
            return
        size = packet_bytes(item) if item is not None else 0
        if self.held + size > self.limit:
            self.overflowed = True
            self.drain()
            self._on_overflow(self)
            return
        self.held += size
        super().put_nowait(item)

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        if item is not None:
            self.held = max(0, self.held - packet_bytes(item))
        return item

    def force_put(self, item: Any) -> None:
        """A last packet (the CLOSE after an overflow), past the cap."""
        super().put_nowait(item)

    def drain(self) -> None:
        """Drop every queued packet (their memory goes now, not with the socket)."""
        while not self.empty():
            super().get_nowait()
            self.task_done()
        self.held = 0
