"""A client's malformed packets: one log line per socket, a counter, and the
socket disconnected — on every path — instead of a traceback per packet.

- Socket.IO packets: `StrictPacket` (python-socketio's documented
  `serializer=` extension: a Packet subclass with its own `decode`) refuses,
  as `BadPacket`, what does not decode (bad JSON, deep nesting, a binary
  message where none is expected) and what a client may not send (CONNECT_ERROR,
  unknown types, an event whose name is not a string). `guard_messages`
  wraps the engine.io `message` handler python-socketio registers (through
  engine.io's public `on()`), so any such error ends in `SocketGuard.report`
  + `evict` instead of engine.io's "message async handler error" traceback;
- engine.io packets: a DirectSocket closes on an undecodable one
  (cyberhub/realtime/direct_socket.py), engine.io's websocket path in
  `TrackedWebSocket.wait` (cyberhub/realtime/fanout.py), polling POST bodies
  in `polling_body_refusal` (called by the Tornado handler before engine.io
  sees the body: engine.io logs a traceback per bad body and keeps the session,
  and answers a packet type it does not expect by waiting for the session's
  queue to drain — a POST that hangs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from socketio import packet as sio_packet

from cyberhub.realtime.guard import SocketGuard

# What a client may send over polling: CLOSE, PONG, MESSAGE (engine.io v4).
CLIENT_POLLING_TYPES = {eio_packet.CLOSE, eio_packet.PONG, eio_packet.MESSAGE}
CLIENT_SIO_TYPES = {sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.EVENT, sio_packet.ACK,
                    sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK}


class BadPacket(ValueError):
    """A Socket.IO packet from a client that is not one the server accepts."""


class StrictPacket(sio_packet.Packet):
    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments = super().decode(encoded_packet)
        except Exception as exc:  # ValueError, RecursionError, UnicodeDecodeError, ...
            raise BadPacket(f"undecodable ({type(exc).__name__})") from None
        kind, data = self.packet_type, self.data
        if kind not in CLIENT_SIO_TYPES:
            raise BadPacket(f"packet type {kind}")
        if kind in (sio_packet.EVENT, sio_packet.BINARY_EVENT) and not (
                isinstance(data, list) and data and isinstance(data[0], str)):
            raise BadPacket("event without a name")
        if kind in (sio_packet.ACK, sio_packet.BINARY_ACK) and not isinstance(data, list):
            raise BadPacket("acknowledgement without arguments")
        if kind == sio_packet.CONNECT and data is not None and not isinstance(data, dict):
            raise BadPacket("connect data is not an object")
        return attachments


def guard_messages(sio: socketio.AsyncServer, guard: SocketGuard, evict: Callable[[str], None]) -> None:
    """Wraps the engine.io `message` handler: a packet python-socketio cannot
    handle (StrictPacket's refusals, its own "Unknown packet type" and
    "Unexpected binary packet") disconnects the socket. Application event
    handlers run in their own tasks (async_handlers), so what reaches here is
    the decoding and dispatch of the client's packet."""
    inner = sio.eio.handlers["message"]

    async def message(eio_sid: str, data: Any) -> None:
        try:
            await inner(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            guard.report(eio_sid, "bad_packet", "bad Socket.IO packet (%s), disconnected",
                         str(exc)[:80] if isinstance(exc, BadPacket) else type(exc).__name__)
            evict(eio_sid)

    sio.eio.on("message", message)


def polling_body_refusal(body: bytes) -> str | None:
    """Why a polling POST body is not one a client sends; None when it is."""
    try:
        packets = eio_payload.Payload(encoded_payload=body.decode("utf-8")).packets
    except Exception:
        return "undecodable engine.io payload"
    if not packets or any(p.packet_type not in CLIENT_POLLING_TYPES for p in packets):
        return "engine.io packet a client does not send"
    return None
