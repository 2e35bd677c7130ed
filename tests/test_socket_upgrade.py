"""Polling sessions that upgrade to a websocket (socket.io-client's default,
`io(url)`) end as DirectSockets: cyberhub/realtime/socket_upgrade.py.

A raw engine.io v4 client over aiohttp takes the upgrade one step at a time,
with events emitted by the server at every step, and checks that each event
arrives once and in order across the two transports; the Python client (which
upgrades as socket.io-client does) checks the end state; the JS suite does the
same with the frontend's own client (js/test/).
"""

from __future__ import annotations

import asyncio
import inspect
import json

import aiohttp
import engineio
import pytest
from engineio import async_socket
from engineio import packet as eio_packet

from cyberhub.realtime.direct_socket import DirectSocket
from tests.support.client import WAIT, connect_socket, watch_sessions

PER_SOCKET_TASKS = {"AsyncSocket._websocket_handler", "AsyncSocket._send_ping", "AsyncSocket.poll"}
RECORD_SEPARATOR = "\x1e"  # between packets of a polling payload


class RawPolling:
    """An engine.io session opened on polling, as socket.io-client opens it."""

    def __init__(self, live, http: aiohttp.ClientSession) -> None:
        self.base = f"{live.base_url}/socket.io/?EIO=4"
        self.http = http
        self.sid = ""

    async def open(self) -> None:
        handshake = await self.get(sid=False)
        assert handshake[0].startswith("0"), handshake
        self.sid = json.loads(handshake[0][1:])["sid"]
        await self.post("40")
        (connect,) = await self.get()
        assert connect.startswith("40{"), connect

    async def get(self, *, sid: bool = True) -> list[str]:
        url = f"{self.base}&transport=polling" + (f"&sid={self.sid}" if sid else "")
        async with self.http.get(url) as reply:
            assert reply.status == 200, await reply.text()
            return (await reply.text()).split(RECORD_SEPARATOR)

    async def get_status(self) -> int:
        async with self.http.get(f"{self.base}&transport=polling&sid={self.sid}") as reply:
            return reply.status

    async def post(self, body: str) -> None:
        async with self.http.post(f"{self.base}&transport=polling&sid={self.sid}", data=body) as reply:
            assert reply.status == 200, await reply.text()

    async def websocket(self) -> aiohttp.ClientWebSocketResponse:
        url = f"{self.base}&transport=websocket&sid={self.sid}".replace("http://", "ws://")
        return await self.http.ws_connect(url)


async def text(ws: aiohttp.ClientWebSocketResponse) -> str:
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.data


def steps_in(packets: list[str]) -> list[int]:
    """The `step` events among engine.io packets, by their number."""
    return [json.loads(p[2:])[1]["n"] for p in packets if p.startswith('42["step"')]


async def test_events_emitted_at_every_step_of_the_upgrade_arrive_once_in_order(live):
    sio = live.services.sio
    sessions = watch_sessions(sio)
    seen: list[str] = []  # every packet the client got, on either transport, in arrival order
    n = 0

    async def step() -> None:
        nonlocal n
        await sio.emit("step", {"n": n})
        n += 1

    async with aiohttp.ClientSession() as http:
        polling = RawPolling(live, http)
        await polling.open()
        await step()  # 0: plain polling
        seen += await polling.get()
        ws = await polling.websocket()
        await step()  # 1: websocket open, not probed yet
        await ws.send_str("2probe")
        assert await text(ws) == "3probe"
        await step()  # 2: probed; a real client now finishes its last GET and pauses polling
        assert await polling.get() == ["6"]  # a GET during the upgrade takes nothing: NOOP
        await step()  # 3: paused, about to send UPGRADE
        retired = sio.eio.sockets[polling.sid]
        service_task_copy = sio.eio.sockets.copy()  # what engine.io's service task may still be walking
        await ws.send_str("5")
        await sessions.until(lambda s: type(s.get(polling.sid)) is DirectSocket, "switched to a DirectSocket")
        # The service task deletes a closed socket's sid and ping-checks the others
        # but closing ones: the retired socket must be neither, so its walk cannot
        # end the session that now carries its sid.
        assert all(not s.closed for s in service_task_copy.values())
        assert retired.closing and not retired.closed and retired.upgraded
        await step()  # 4: after the switch
        while len(steps_in(seen)) < n:
            seen.append(await text(ws))
        assert steps_in(seen) == [0, 1, 2, 3, 4]

        sock = sio.eio.sockets[polling.sid]
        assert sock.queue is None and sock.connected and not sock.closed
        # the environ kept for the session no longer holds the finished handshake request
        (sid,) = [s for s, eio_sid in sio.manager.get_participants("/", None) if eio_sid == polling.sid]
        environ = sio.get_environ(sid)
        assert environ is sio.environ[polling.sid] and "wsgi.input" not in environ
        assert environ["tornado.handler"].eio_socket is sock
        assert await polling.get_status() == 400  # engine.io refuses HTTP for an upgraded session
        running = {task.get_coro().__qualname__ for task in asyncio.all_tasks()}
        assert not running & PER_SOCKET_TASKS, running
        # the session lives on: pings come on the websocket from the one timer, and pongs keep it
        for _ in range(2):
            while (msg := await text(ws)) != "2":
                assert msg == "6", msg  # only a NOOP may still be on the way
            await ws.send_str("3")
        await step()
        assert steps_in([await text(ws)]) == [5]
        assert sio.eio.sockets[polling.sid] is sock and not sock.closed
        await ws.close()
        await sessions.until(lambda s: polling.sid not in s, "forgot the closed session")


@pytest.mark.parametrize("first", ["3probe", "5", "2"], ids=["wrong-probe", "upgrade-before-probe", "plain-ping"])
async def test_a_failed_upgrade_closes_the_websocket_and_polling_goes_on(live, first):
    sio = live.services.sio
    async with aiohttp.ClientSession() as http:
        polling = RawPolling(live, http)
        await polling.open()
        ws = await polling.websocket()
        await ws.send_str(first)
        assert (await asyncio.wait_for(ws.receive(), WAIT)).type in (aiohttp.WSMsgType.CLOSE,
                                                                     aiohttp.WSMsgType.CLOSED)
        sock = sio.eio.sockets[polling.sid]
        assert type(sock) is async_socket.AsyncSocket and not sock.upgrading and not sock.upgraded
        await sio.emit("step", {"n": 7})
        assert steps_in(await polling.get()) == [7]


async def test_a_websocket_closed_mid_upgrade_leaves_the_polling_session(live):
    sio = live.services.sio
    async with aiohttp.ClientSession() as http:
        polling = RawPolling(live, http)
        await polling.open()
        ws = await polling.websocket()
        await ws.send_str("2probe")
        assert await text(ws) == "3probe"
        await ws.close()
        # the probe's NOOP, then polling as before
        assert await polling.get() == ["6"]
        await sio.emit("step", {"n": 1})
        assert steps_in(await polling.get()) == [1]
        assert type(sio.eio.sockets[polling.sid]) is async_socket.AsyncSocket


async def test_an_upgrade_that_never_probes_is_closed_after_the_ping_timeout(live):
    sio = live.services.sio
    async with aiohttp.ClientSession() as http:
        polling = RawPolling(live, http)
        await polling.open()
        ws = await polling.websocket()
        # no probe: the server gives up after SOCKET_PING_TIMEOUT (2 s on the test server)
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        sock = sio.eio.sockets.get(polling.sid)  # (its pings went unanswered: it may be gone too)
        assert sock is None or not sock.upgrading


async def test_the_python_client_upgrades_into_a_direct_socket(live):
    sio = live.services.sio
    sessions = watch_sessions(sio)
    client, recorder = await connect_socket(live.base_url, transports=["polling", "websocket"])
    try:
        sid = client.eio.sid
        await sessions.until(lambda s: type(s.get(sid)) is DirectSocket, "upgraded into a DirectSocket")
        assert client.transport() == "websocket"
        request = sio.eio.sockets[sid].handler.request  # trimmed (direct_socket.trim_opened_request)
        assert request.connection is None and request.server_connection is None and not request.headers
        # neither the upgrade request nor the polling requests are still running (realtime/ws_receive.py)
        running = {task.get_coro().__qualname__ for task in asyncio.all_tasks()}
        assert "RequestHandler._execute" not in running and not running & PER_SOCKET_TASKS, running
        assert "ReceiveInOwnTask._receive_frames" in running, running
        for i in range(3):
            await sio.emit("step", {"n": i})
        await recorder.wait_for("step", 3)
        assert [d["n"] for d in recorder.of("step")] == [0, 1, 2]
    finally:
        await client.disconnect()


# --- the engine.io internals socket_upgrade.py relies on (python-engineio 4.15.1) ---


async def test_a_closing_polling_socket_sends_no_ping(live):
    """A retired polling socket's ping task is cancelled; were one left, it must not send."""
    eio = live.services.sio.eio
    sock = async_socket.AsyncSocket(eio, "retired")
    sock.closing = True
    interval, eio.ping_interval = eio.ping_interval, 0
    try:
        await sock._send_ping()
    finally:
        eio.ping_interval = interval
    assert sock.queue.empty()


def test_the_service_task_deletes_closed_sids_and_skips_closing_sockets():
    source = inspect.getsource(engineio.AsyncServer._service_task)
    assert "for s in self.sockets.copy().values():" in source
    assert "if s.closed:" in source and "del self.sockets[s.sid]" in source
    assert "elif not s.closing:" in source and "await s.check_ping_timeout()" in source


def test_the_upgrade_handshake_mirrored_is_engineios():
    source = inspect.getsource(async_socket.AsyncSocket._websocket_handler)
    # probe → PONG "probe" on the websocket, then a NOOP queued to end the held poll, then UPGRADE
    assert "decoded_pkt.data != 'probe'" in source
    assert "packet.Packet(packet.PONG, data='probe')" in source
    assert "await self.queue.put(packet.Packet(packet.NOOP))" in source
    assert "decoded_pkt.packet_type != packet.UPGRADE" in source
    assert eio_packet.Packet(eio_packet.PONG, data="probe").encode() == "3probe"
    # a GET poll during an upgrade answers NOOP
    assert "if self.upgrading or self.upgraded:" in inspect.getsource(async_socket.AsyncSocket.handle_get_request)
