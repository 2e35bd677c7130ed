"""The broadcast fast path (cyberhub/realtime/fanout.py) through real clients: no event
lost, per-socket order kept, nothing before a client's CONNECT — for idle
websockets (fast path), polling clients, a socket in the middle of the
polling → websocket upgrade, events relayed by Redis from another process,
and clients that connect during broadcasts. (An upgraded session becomes a
DirectSocket; order across that switch: tests/test_socket_upgrade.py.)

Which path an event took is read from the manager's delivery counts (also in
/metrics as cyberhub_socket_deliveries_total).
"""

from __future__ import annotations

import asyncio
import gc
import json
import re

import aiohttp
import pytest

from tests.support.client import WAIT, Recorder, connect_socket, until_relayed
from tests.support.process import start_redis


def counts(live) -> tuple[int, int]:
    manager = live.services.sio.manager
    return manager.fast_deliveries, manager.queued_deliveries


def ticks(rec: Recorder, name: str = "tick") -> list:
    return rec.of(name)


class RawSocket:
    """A bare engine.io v4 / Socket.IO v5 client over aiohttp, to hold a socket
    in states the real clients pass through too fast to test (mid-upgrade)."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url, self.http = base_url, http
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.sid = ""

    def url(self, transport: str) -> str:
        query = f"EIO=4&transport={transport}" + (f"&sid={self.sid}" if self.sid else "")
        return f"{self.base_url}/socket.io/?{query}"

    async def poll(self) -> list[str]:
        async with self.http.get(self.url("polling")) as r:
            assert r.status == 200, await r.text()
            return (await r.text()).split("\x1e")

    async def post(self, packet: str) -> None:
        async with self.http.post(self.url("polling"), data=packet.encode()) as r:
            assert r.status == 200, await r.text()

    async def open_polling(self) -> None:
        handshake = await self.poll()
        assert handshake[0].startswith("0"), handshake
        self.sid = json.loads(handshake[0][1:])["sid"]
        await self.post("40")
        packets = await self.poll()
        assert packets[0].startswith("40{"), packets  # Socket.IO CONNECT

    async def open_websocket(self) -> None:
        self.ws = await self.http.ws_connect(self.url("websocket").replace("http://", "ws://"))

    async def receive(self) -> str:
        """The next packet over the websocket, answering the server's pings."""
        assert self.ws is not None
        while True:
            msg = await asyncio.wait_for(self.ws.receive_str(), WAIT)
            if msg == "2":
                await self.ws.send_str("3")
                continue
            return msg

    async def events_until(self, last: str) -> list[str]:
        seen = []
        while True:
            msg = await self.receive()
            seen.append(msg)
            if msg.startswith("42") and json.loads(msg[2:])[0] == last:
                return seen


def events_of(packets: list[str]) -> list:
    return [json.loads(p[2:]) for p in packets if p.startswith("42")]


async def test_idle_websocket_events_take_the_fast_path_in_order(live):
    client, rec = await connect_socket(live.base_url)
    try:
        fast, queued = counts(live)
        for i in range(20):
            await live.services.sio.emit("tick", i)
        await rec.wait_for("tick", count=20)
        assert ticks(rec) == list(range(20))
        assert counts(live) == (fast + 20, queued)
    finally:
        await client.disconnect()


async def test_polling_clients_get_every_event_in_order_next_to_websockets(live):
    token, user = await live.api.register("poller")
    polling, on_polling = await connect_socket(live.base_url, token=token, transports=["polling"])
    ws, on_ws = await connect_socket(live.base_url, token=token)
    try:
        fast, queued = counts(live)
        # In batches the Python client accepts: python-engineio's client drops a
        # polling response of more than 16 packets (Payload.max_decode_packets).
        for batch in range(3):
            for i in range(batch * 10, batch * 10 + 10):
                await live.services.sio.emit("tick", i)
                if i % 10 == 0:  # and per-user events, through the same path, in between
                    await live.services.notifier.balance_updated(user["id"], i)
            await on_polling.wait_for("tick", count=batch * 10 + 10)
        for rec in (on_polling, on_ws):
            await rec.wait_for("tick", count=30)
            assert ticks(rec) == list(range(30))
            assert rec.of(f"balance:updated:{user['id']}") == [{"balance": 0}, {"balance": 10}, {"balance": 20}]
            assert [n for n in rec.names() if n != "tick"] == [f"balance:updated:{user['id']}"] * 3
            names = rec.names()
            assert names.index(f"balance:updated:{user['id']}") == 1  # right after tick 0, as emitted
        now_fast, now_queued = counts(live)
        assert now_queued - queued == 33  # the polling socket: 30 ticks + 3 balances, all through its queue
        assert now_fast - fast == 33  # the idle websocket: all fast
    finally:
        await polling.disconnect()
        await ws.disconnect()


async def test_a_socket_mid_upgrade_gets_every_event_in_order(live):
    sio = live.services.sio
    async with aiohttp.ClientSession() as http:
        raw = RawSocket(live.base_url, http)
        await raw.open_polling()
        sock = sio.eio.sockets[raw.sid]
        await sio.emit("tick", 0)  # polling: through the queue
        assert events_of(await raw.poll()) == [["tick", 0]]

        await raw.open_websocket()
        await raw.ws.send_str("2probe")
        assert await raw.receive() == "3probe"
        assert sock.upgrading and not sock.upgraded
        fast, queued = counts(live)
        for i in range(1, 6):
            await sio.emit("tick", i)
        assert counts(live) == (fast, queued + 5)  # held on the queue during the upgrade
        # The poll still open during an upgrade is answered with a NOOP, no events.
        assert await raw.poll() == ["6"]

        await raw.ws.send_str("5")  # upgrade complete: the writer sends what was held, in order
        await sio.emit("tick", 6)  # queue not yet written: behind it, whatever the path
        received: list = []
        while not received or received[-1] != ["tick", 6]:
            received += events_of([await raw.receive()])
        assert received == [["tick", i] for i in range(1, 7)]
        # Idle websocket now: the fast path, still in order.
        fast, queued = counts(live)
        for i in range(7, 10):
            await sio.emit("tick", i)
        assert counts(live) == (fast + 3, queued)
        received = []
        while len(received) < 3:
            received += events_of([await raw.receive()])
        assert received == [["tick", i] for i in range(7, 10)]
        await raw.ws.close()


async def test_clients_connecting_during_broadcasts_get_connect_first_and_no_gaps(live):
    """While events are emitted back to back, new clients connect: each gets
    its CONNECT before any event, then every event from some point on, in
    order, without gaps, up to the last."""
    sio = live.services.sio
    stop = asyncio.Event()
    emitted = []

    async def emitter() -> None:
        i = 0
        while not stop.is_set():
            await sio.emit("tick", i)
            emitted.append(i)
            i += 1
            await asyncio.sleep(0)  # yield, so the connections proceed between events

    async def raw_client(http: aiohttp.ClientSession) -> tuple[RawSocket, list[str]]:
        raw = RawSocket(live.base_url, http)
        await raw.open_websocket()
        first = await raw.receive()
        assert first.startswith("0{"), first  # engine.io OPEN
        await raw.ws.send_str("40")
        return raw, []

    async with aiohttp.ClientSession() as http:
        task = asyncio.create_task(emitter())
        try:
            raws = [await raw_client(http) for _ in range(5)]
            websockets = [await connect_socket(live.base_url) for _ in range(3)]
            # every raw client: the first Socket.IO packet is its CONNECT
            for raw, seen in raws:
                while True:
                    msg = await raw.receive()
                    if msg.startswith("4"):
                        seen.append(msg)
                        break
                assert seen[0].startswith("40{"), seen[:3]
        finally:
            stop.set()
            await task
        last = emitted[-1]
        await sio.emit("end")
        try:
            for raw, seen in raws:
                seen += await raw.events_until("end")
                got = [event[1] for event in events_of(seen) if event[0] == "tick"]
                if got:  # a client connected after the last tick gets none: that is fine too
                    assert got == list(range(got[0], last + 1)), got[:5]
            for _, rec in websockets:
                await rec.wait_for("end")
                got = ticks(rec)
                if got:
                    assert got == list(range(got[0], last + 1)), got[:5]
        finally:
            for raw, _ in raws:
                await raw.ws.close()
            for client, _ in websockets:
                await client.disconnect()


@pytest.fixture
async def redis_url():
    server = await start_redis()
    yield f"redis://127.0.0.1:{server.port}/0"
    await server.stop()


async def test_events_relayed_by_redis_take_the_same_path_in_order(start_live, redis_url):
    """Emitted on B, delivered on A by A's manager: websocket clients by the
    fast path, polling clients by their queues, all in order, none lost."""
    live_a = await start_live(redis_url=redis_url)
    live_b = await start_live(redis_url=redis_url)
    token, user = await live_a.api.register("relayed")
    ws, on_ws = await connect_socket(live_a.base_url, token=token)
    polling, on_polling = await connect_socket(live_a.base_url, token=token, transports=["polling"])
    try:
        await until_relayed(live_b.services.sio, on_ws)
        await on_polling.wait_for("probe")
        fast, queued = counts(live_a)
        for batch in range(5):  # ≤ 16 per polling response for the Python client (see above)
            for i in range(batch * 5, batch * 5 + 5):
                await live_b.services.sio.emit("tick", i)
            await on_polling.wait_for("tick", count=batch * 5 + 5)
        for amount in (100, 200, 300):
            assert (await live_b.api.pay(user["id"], amount)).status == 200
        for rec in (on_ws, on_polling):
            await rec.wait_for(f"balance:updated:{user['id']}", count=3)
            await rec.wait_for("tick", count=25)
            assert ticks(rec) == list(range(25))
            assert rec.of(f"balance:updated:{user['id']}") == [{"balance": 100}, {"balance": 300}, {"balance": 600}]
        now_fast, now_queued = counts(live_a)
        assert now_fast - fast == 28 and now_queued - queued == 28
        assert counts(live_b) == (0, 0)  # B has no sockets: it only published
    finally:
        await ws.disconnect()
        await polling.disconnect()


async def test_metrics_export_loop_lag_gc_pauses_and_delivery_paths(live):
    """Operators see event-loop lag and GC pauses as histograms, and how events were delivered."""
    client, rec = await connect_socket(live.base_url)
    try:
        await live.services.sio.emit("tick", 1)
        await rec.wait_for("tick")
        gc.collect()  # a collection the server's gc.callbacks hook times

        await asyncio.wait_for(live.server.loop_lag.measured.wait(), WAIT)  # the probe's first tick
        text = (await live.api.get("/metrics")).body
        assert re.search(r"^cyberhub_event_loop_lag_seconds_count [1-9]", text, re.M), text
        assert 'cyberhub_event_loop_lag_seconds_bucket{le="0.05"}' in text
        assert re.search(r'^cyberhub_gc_pause_seconds_count\{generation="2"\} [1-9]', text, re.M), text
        assert re.search(r'^cyberhub_socket_deliveries_total\{path="fast"\} [1-9]', text, re.M)
        assert re.search(r'^cyberhub_socket_deliveries_total\{path="queued"\} ', text, re.M)
        assert "cyberhub_live_feed_skipped_total 0.0" in text
        assert re.search(r"^cyberhub_gc_frozen_objects [1-9]", text, re.M)  # start-up froze the modules
    finally:
        await client.disconnect()
