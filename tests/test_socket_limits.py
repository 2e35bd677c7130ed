"""What one client may cost the server over Socket.IO (issue 20, items 1, 2
and 4), through a real server and raw clients that misbehave on purpose:

- SOCKET_MAX_PENDING_BYTES: a websocket that floods engine.io packets the
  server answers and never reads is disconnected once the bytes held for it
  reach the cap; a polling session that never polls again is disconnected
  once its queue does;
- SOCKET_MAX_PER_ADDRESS / SOCKET_MAX_CONNECTIONS refuse new sessions with a
  429 / 503 envelope; abandoned sessions expire at ping interval + timeout;
- malformed packets disconnect with at most one log line per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import struct
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from cyberhub.realtime.direct_socket import DirectSocket
from cyberhub.realtime.pending import held_bytes
from tests.support.client import WAIT, connect_socket, watch_sessions

CAP = 64 * 1024  # the smallest SOCKET_MAX_PENDING_BYTES allowed


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (RFC 6455; a zero mask leaves the payload as is)."""
    n = len(payload)
    head = struct.pack("!BB", 0x80 | opcode, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    return head + b"\0\0\0\0" + payload


async def raw_upgrade(live, query: str, rcvbuf: int) -> tuple[socket.socket, bytes]:
    """A websocket upgrade on a plain TCP socket with a small receive buffer;
    returns the socket and what followed the 101 answer."""
    url = urlsplit(live.base_url)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, (url.hostname, url.port))
    await loop.sock_sendall(sock, (
        f"GET /socket.io/?{query} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 101"), data
    return sock, data.partition(b"\r\n\r\n")[2]


async def raw_websocket(live, rcvbuf: int = 4096) -> tuple[socket.socket, str]:
    """A websocket-first session on a plain TCP socket with a small receive
    buffer, which the test reads only for the handshake: a client that stops
    reading. Returns the socket and the engine.io sid."""
    loop = asyncio.get_running_loop()
    sock, data = await raw_upgrade(live, "EIO=4&transport=websocket", rcvbuf)
    while b'"sid"' not in data or not data.rstrip().endswith(b"}"):
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)
        assert chunk, data
        data += chunk
    sid = json.loads(data[2:].decode()[1:])["sid"]  # 0x81, length, then "0{...}": the OPEN packet
    await loop.sock_sendall(sock, client_frame(b"40"))
    return sock, sid


async def polling_handshake(live) -> str:
    reply = await live.api.get("/socket.io/?EIO=4&transport=polling")
    assert reply.status == 200, reply
    return json.loads(reply.body[1:])["sid"]  # "0{...}": the engine.io OPEN packet


class Records(logging.Handler):
    def __init__(self, on_record=None) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.on_record = on_record

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "cyberhub.access":  # one line per HTTP request, by design
            self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)


@pytest.fixture
def captured():
    """Every log record of the run while the test lasts (root logger)."""
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


# -- item 1: SOCKET_MAX_PENDING_BYTES --------------------------------------------

@pytest.mark.parametrize("settings_overrides", [{"socket_max_pending_bytes": CAP}])
async def test_a_websocket_that_floods_and_never_reads_is_cut_off_at_the_cap(live):
    sessions = watch_sessions(live.services.sio)
    sock, sid = await raw_websocket(live)
    server_side = sessions[sid].handler.ws_connection.stream
    # The kernel would otherwise absorb megabytes before the server holds any.
    server_side.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    held_at_cutoff: list[int] = []
    watcher = Records(lambda r: held_at_cutoff.append(held_bytes(server_side))
                      if "bytes unsent" in r.getMessage() else None)
    logging.getLogger("cyberhub.realtime.guard").addHandler(watcher)
    # engine.io UPGRADE packets ("5"): the server answers each with NOOP ("6"),
    # 3 bytes on the wire; 60,000 of them are ~180 KB of answers, past the cap.
    flood = client_frame(b"5") * 60_000
    loop = asyncio.get_running_loop()
    sender = asyncio.ensure_future(loop.sock_sendall(sock, flood))
    try:
        await sessions.until(lambda t: sid not in t, "closed the flooding socket")
    finally:
        logging.getLogger("cyberhub.realtime.guard").removeHandler(watcher)
        sender.cancel()
        sock.close()
    assert live.services.sio.manager.guard.counts["send_buffer_full"] >= 1
    # What the server held for this client when it cut it off: up to the cap, never past it.
    assert len(held_at_cutoff) == 1 and CAP - 16 < held_at_cutoff[0] <= CAP, held_at_cutoff
    metrics = (await live.api.get("/metrics")).body
    assert 'cyberhub_socket_refusals_total{reason="send_buffer_full"}' in metrics


async def raw_upgraded(live) -> tuple[socket.socket, str]:
    """A polling session upgraded to a websocket on a raw socket that stops
    reading after the upgrade (the session is then a DirectSocket:
    cyberhub/realtime/socket_upgrade.py)."""
    sid = await polling_handshake(live)
    loop = asyncio.get_running_loop()
    sock, _ = await raw_upgrade(live, f"EIO=4&transport=websocket&sid={sid}", 4096)
    await loop.sock_sendall(sock, client_frame(b"2probe"))
    answer = b""
    while b"3probe" not in answer:
        answer += await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)
    await loop.sock_sendall(sock, client_frame(b"5"))  # upgrade done
    # The NOOP queued for the (absent) poll comes over the websocket once the
    # server has switched the session to it.
    while b"\x81\x016" not in answer:
        answer += await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)
    assert live.services.sio.eio.sockets[sid].upgraded
    await loop.sock_sendall(sock, client_frame(b"40"))  # Socket.IO CONNECT: now a broadcast recipient
    while b'40{"sid"' not in answer:
        answer += await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)
    upgraded = live.services.sio.eio.sockets[sid]
    assert type(upgraded) is DirectSocket
    server_side = upgraded.handler.ws_connection.stream
    server_side.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return sock, sid


@pytest.mark.parametrize("settings_overrides", [{"socket_max_pending_bytes": CAP}])
async def test_an_upgraded_websocket_that_floods_and_never_reads_is_cut_off_too(live, captured):
    """The same flood on a session that started on polling and upgraded. The
    writes still pending when it is cut off fail quietly (unread, each was an
    asyncio "exception was never retrieved" error with two tracebacks)."""
    sessions = watch_sessions(live.services.sio)
    loop = asyncio.get_running_loop()
    sock, sid = await raw_upgraded(live)
    try:
        sender = asyncio.ensure_future(loop.sock_sendall(sock, client_frame(b"5") * 60_000))
        await sessions.until(lambda t: sid not in t, "closed the flooding upgraded socket")
        sender.cancel()
    finally:
        sock.close()
    assert live.services.sio.manager.guard.counts["send_buffer_full"] >= 1
    await asyncio.sleep(0)  # one loop step: the failed writes' callbacks run
    gc.collect()  # (and anything they left in a cycle is finalised)
    assert not [r for r in captured.records if r.exc_info or "never retrieved" in r.getMessage()]


@pytest.mark.parametrize("settings_overrides", [{"socket_max_pending_bytes": CAP, "socket_ping_interval": 60.0}])
async def test_broadcasts_to_an_upgraded_websocket_that_never_reads_stop_at_the_cap(live):
    """The passive variant on the fan-out's direct write to an upgraded session."""
    sessions = watch_sessions(live.services.sio)
    sock, sid = await raw_upgraded(live)
    manager = live.services.sio.manager
    fast_before = manager.fast_deliveries
    try:
        for _ in range(2 * CAP // 20_000 + 2):
            await live.services.sio.emit("cases:updated", "x" * 20_000)
        await sessions.until(lambda t: sid not in t, "closed the socket that never read its broadcasts")
    finally:
        sock.close()
    assert manager.fast_deliveries > fast_before  # (the path under test)
    assert manager.guard.counts["send_buffer_full"] >= 1


@pytest.mark.parametrize("settings_overrides", [{"socket_max_pending_bytes": CAP}])
async def test_a_polling_session_that_never_polls_is_cut_off_when_its_queue_reaches_the_cap(live):
    sessions = watch_sessions(live.services.sio)
    sid = await polling_handshake(live)
    assert (await live.api.call("POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}", raw=b"40")).status == 200
    queue = sessions[sid].queue
    big = "x" * 20_000
    for _ in range(CAP // 20_000 + 1):  # broadcasts nobody collects
        await live.services.sio.emit("cases:updated", big)
        assert queue.held <= CAP
    await sessions.until(lambda t: sid not in t, "closed the session that never polled")
    assert live.services.sio.manager.guard.counts["send_buffer_full"] == 1


# -- item 4: malformed packets ---------------------------------------------------

GARBAGE = [b"49", b"44", b'42[{}]', b"4" + b"[" * 5000 + b"]" * 5000, b'42["x"', b"4\x00\x01"]


async def test_library_loggers_have_no_handler_of_their_own(live):
    # With one, every library error was printed twice, once without a timestamp.
    for name in ("socketio.server", "engineio.server"):
        assert logging.getLogger(name).handlers == [], name


@pytest.mark.parametrize("garbage", GARBAGE, ids=lambda g: g[:6].decode("latin-1"))
async def test_a_malformed_socketio_packet_disconnects_the_websocket_with_one_log_line(live, captured, garbage):
    sessions = watch_sessions(live.services.sio)
    sock, sid = await raw_websocket(live, rcvbuf=1 << 20)
    loop = asyncio.get_running_loop()
    try:
        with contextlib.suppress(OSError):  # (the server may have closed already)
            await loop.sock_sendall(sock, client_frame(garbage) * 500)
        await sessions.until(lambda t: sid not in t, "closed the socket that sent garbage")
        # The server's side is closed: the client reads the end of the stream.
        while await asyncio.wait_for(loop.sock_recv(sock, 65536), WAIT):
            pass
    finally:
        sock.close()
    problems = [r for r in captured.records if r.levelno >= logging.WARNING]
    assert len(problems) <= 2, [r.getMessage() for r in problems]
    assert not [r for r in captured.records if r.exc_info], "no traceback for a client's bad input"
    assert live.services.sio.manager.guard.counts["bad_packet"] >= 1


@pytest.mark.parametrize("garbage", [b'42[{}]', b"x"], ids=["socketio", "engineio"])
async def test_garbage_on_an_upgraded_websocket_disconnects_it(live, captured, garbage):
    sessions = watch_sessions(live.services.sio)
    sock, sid = await raw_upgraded(live)
    try:
        await asyncio.get_running_loop().sock_sendall(sock, client_frame(garbage) * 100)
        await sessions.until(lambda t: sid not in t, "closed the upgraded socket that sent garbage")
    finally:
        sock.close()
    assert not [r for r in captured.records if r.exc_info]
    assert live.services.sio.manager.guard.counts["bad_packet"] >= 1


async def test_a_malformed_polling_body_closes_the_session_with_one_log_line(live, captured):
    sessions = watch_sessions(live.services.sio)
    sid = await polling_handshake(live)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert (await live.api.call("POST", path, raw=b"40")).status == 200
    refused = await live.api.call("POST", path, raw=b"9garbage")
    assert refused.status == 400 and refused.body["code"] == "bad_packet", refused
    await sessions.until(lambda t: sid not in t, "closed the polling session that sent garbage")
    for _ in range(20):  # the session is gone: later garbage is engine.io's "invalid session"
        await live.api.call("POST", path, raw=b"9garbage")
    assert not [r for r in captured.records if r.exc_info]
    assert len([r for r in captured.records if r.levelno >= logging.WARNING]) <= 2


async def test_socketio_garbage_over_polling_disconnects_too(live, captured):
    sessions = watch_sessions(live.services.sio)
    sid = await polling_handshake(live)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert (await live.api.call("POST", path, raw=b"40")).status == 200
    await live.api.call("POST", path, raw=b'42[{}]')
    await sessions.until(lambda t: sid not in t, "closed the polling session that sent a bad event")
    assert not [r for r in captured.records if r.exc_info]


# -- item 2: sessions per address, in total, and their expiry --------------------

@pytest.mark.parametrize("settings_overrides", [{"socket_max_per_address": 5}])
async def test_a_handshake_flood_from_one_address_is_refused_past_the_limit(live):
    sessions = watch_sessions(live.services.sio)
    answers = await asyncio.gather(*(live.api.get("/socket.io/?EIO=4&transport=polling") for _ in range(40)))
    assert sorted(a.status for a in answers) == [200] * 5 + [429] * 35
    refused = next(a for a in answers if a.status == 429)
    assert refused.body == {"success": False, "code": "too_many_connections",
                            "error": "Too many connections from this address; try again later"}
    assert len(sessions) == 5
    async with aiohttp.ClientSession() as http:  # a websocket-first client is refused before the upgrade
        with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
            await http.ws_connect(f"{live.base_url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket")
        assert refusal.value.status == 429
    assert live.services.sio.manager.guard.counts["per_address"] == 36


@pytest.mark.parametrize("settings_overrides", [{"socket_max_connections": 3}])
async def test_the_process_refuses_sessions_past_its_connection_limit(live):
    answers = [await live.api.get("/socket.io/?EIO=4&transport=polling") for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 503]
    assert answers[-1].body["code"] == "server_full"


@pytest.mark.parametrize("settings_overrides", [{"socket_ping_interval": 0.5, "socket_ping_timeout": 4.0}])
async def test_abandoned_sessions_expire_at_ping_interval_plus_timeout(live):
    """100 sessions that do the handshake (+ CONNECT) and never poll again.
    engine.io's own monitor visits one session every ping_timeout / 100 s with
    an asyncio.wait_for each: some would live up to a whole round (4 s) longer."""
    sio = live.services.sio
    sessions = watch_sessions(sio)
    for _ in range(100):
        sid = await polling_handshake(live)
        await live.api.call("POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}", raw=b"40")
    last_handshake = time.monotonic()
    tick = sio.manager.reaper.tick
    due = sio.eio.ping_interval + sio.eio.ping_timeout
    await sessions.until(lambda t: not t, "expired every abandoned session",
                         limit=due + 2 * tick - (time.monotonic() - last_handshake))


async def test_refused_identify_events_are_logged_once_per_socket(live, captured):
    client, _ = await connect_socket(live.base_url)  # anonymous: every identify is refused
    try:
        for _ in range(30):
            ack = await client.call("user:identify", {"userId": "someone"}, timeout=WAIT)
            assert ack["code"] == "identify_refused"
    finally:
        await client.disconnect()
    lines = [r.getMessage() for r in captured.records if "identify" in r.getMessage().lower()]
    assert len(lines) == 1, lines
    assert live.services.sio.manager.guard.counts["identify_refused"] == 30
