"""Disconnecting a client for its own fault (too much unsent, garbage sent),
on whichever path its session runs.

- a websocket-first DirectSocket: its stream is dropped; Tornado's on_close
  ends the session (cyberhub/realtime/direct_socket.py);
- engine.io's own sessions (polling, or upgraded to a websocket): the
  session is closed without a goodbye packet (`abort`: none would be read),
  its queue emptied and a CLOSE put in it, so a GET poll waiting on it is
  answered at once instead of at its timeout; an upgraded session's
  websocket is dropped too, which ends engine.io's reader and writer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import engineio
import tornado.websocket
from engineio import packet as eio_packet

from cyberhub.realtime.direct_socket import DirectSocket
from cyberhub.realtime.pending import CappedQueue

_tasks: set[asyncio.Task] = set()  # referenced until done (asyncio keeps only weak ones)


def drop_websocket(handler: tornado.websocket.WebSocketHandler | None) -> None:
    conn = handler.ws_connection if handler is not None else None
    if conn is not None and not conn.is_closing():
        conn.stream.close()


def evict(eio: engineio.AsyncServer, sid: str, websockets: dict[str, Any]) -> None:
    sock = eio.sockets.get(sid)
    if sock is None:
        return
    if type(sock) is DirectSocket:
        drop_websocket(sock.handler)
        return
    drop_websocket(websockets.get(sid))
    if sock.closing or sock.closed:
        return

    async def close() -> None:
        await sock.close(wait=False, abort=True, reason=eio.reason.TRANSPORT_ERROR)
        queue = sock.queue
        if isinstance(queue, CappedQueue):
            queue.drain()
            queue.force_put(eio_packet.Packet(eio_packet.CLOSE))

    task = asyncio.ensure_future(close())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
