"""Server → client websocket frames built once and written straight to a
Tornado stream: what the socket fast paths (cyberhub/realtime/fanout.py,
cyberhub/realtime/direct_socket.py) write instead of calling `write_message` per
recipient.

The library versions every internal of the fast paths was checked against
live here (`CHECKED_VERSIONS`; tests/test_fanout_internals.py fails when the
installed versions differ). The Tornado internals this module relies on:
  - `IOStream.socket` (non-blocking) and `IOStream._write_buffer` (empty when
    nothing is waiting to be sent); frames are written with `stream.write`
    in call order (`WebSocketProtocol13._write_frame`);
  - a server-side `WebSocketProtocol13` frame is unmasked, and uncompressed
    when `_compressor` is None, so it is the same bytes for every recipient.
"""

from __future__ import annotations

import struct
from importlib.metadata import version

import tornado.iostream

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
