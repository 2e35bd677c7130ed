"""GET /health: its exact shape, the live socket count, and degraded when the store is down."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from tests.support.client import connect_socket, watch_sessions

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


def assert_timestamp_is_now(text: str) -> None:
    assert ISO_UTC.match(text), text
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=30)


async def clients_in_health(live) -> int:
    reply = await live.api.get("/health")
    assert reply.status == 200
    return reply.body["clients"]


async def test_health_shape_is_exactly_the_spec(live):
    """Exactly status / websocket / relay / clients / timestamp, with an ISO-8601 UTC time."""
    reply = await live.api.get("/health")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.body) == {"status", "websocket", "relay", "clients", "timestamp"}
    assert reply.body["status"] == "ok" and reply.body["websocket"] == "active"
    assert reply.body["relay"] == "local"  # no REDIS_URL: one process, nothing to relay
    assert reply.body["clients"] == 0 and type(reply.body["clients"]) is int
    assert_timestamp_is_now(reply.body["timestamp"])


async def test_clients_counts_sockets_as_they_connect_and_disconnect(live):
    """Websocket, polling and authenticated sockets all count; each disconnect is subtracted."""
    sessions = watch_sessions(live.services.sio)
    token, _ = await live.api.register("counter")
    first, _ = await connect_socket(live.base_url)
    assert await clients_in_health(live) == 1  # the session exists before the client's CONNECT
    second, _ = await connect_socket(live.base_url, token=token, transports=["polling"])
    third, _ = await connect_socket(live.base_url, token=token)
    assert await clients_in_health(live) == 3

    await third.disconnect()
    await sessions.until(lambda table: len(table) == 2, "down to 2")
    assert await clients_in_health(live) == 2
    await asyncio.gather(first.disconnect(), second.disconnect())
    await sessions.until(lambda table: not table, "empty")
    assert await clients_in_health(live) == 0


async def test_store_down_is_503_degraded_and_recovers(live):
    """With the database unreachable: 503, status "degraded", same shape; back to ok after."""
    client, _ = await connect_socket(live.base_url)
    try:
        live.chaos.down = True
        reply = await live.api.get("/health")
        assert reply.status == 503
        assert set(reply.body) == {"status", "websocket", "relay", "clients", "timestamp"}
        assert reply.body["status"] == "degraded" and reply.body["websocket"] == "active"
        assert reply.body["clients"] == 1
        assert_timestamp_is_now(reply.body["timestamp"])

        live.chaos.down = False
        reply = await live.api.get("/health")
        assert reply.status == 200 and reply.body["status"] == "ok"
    finally:
        live.chaos.down = False
        await client.disconnect()
