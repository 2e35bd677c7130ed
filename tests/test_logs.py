"""Log lines: the readable form with the seed's monitoring lines, and the
JSON form (LOG_FORMAT=json). No secret ever reaches a log: see the
session-wide scan in conftest.py (log_secret_scan)."""

from __future__ import annotations

import io
import json
import logging

from cyberhub.platform import ids
from cyberhub.platform.logs import JsonFormatter
from tests.support.client import connect_socket, watch_sessions


async def test_json_lines_carry_request_and_user_ids(live):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        token, user = await live.api.register("json_logger")
        reply = await live.api.get("/api/profile", token=token, headers={"X-Request-Id": "trace-42"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert reply.headers["X-Request-Id"] == "trace-42"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all({"time", "level", "event"} <= set(line) for line in lines)
    access = [line for line in lines if line.get("path") == "/api/profile"]
    assert len(access) == 1
    assert access[0]["request_id"] == "trace-42" and access[0]["user_id"] == user["id"]
    assert access[0]["status"] == 200 and access[0]["level"] == "info"


async def test_seed_monitoring_lines(live, caplog):
    caplog.set_level(logging.INFO, logger="cyberhub")
    token, user = await live.api.register("watched")
    client, recorder = await connect_socket(live.base_url, token=token)
    ack = await client.call("user:identify", {"userId": user["id"]})
    assert ack == {"success": True}
    await live.api.post("/api/admin/cases", {"name": "Logged", "price": 1, "items": [
        {"name": "x", "rarity": "common", "price": 1, "weight": 1}]}, token=await live.admin_token())
    await recorder.wait_for("cases:updated")
    await live.api.pay(user["id"], 5)
    await recorder.wait_for(f"balance:updated:{user['id']}")
    sid = client.get_sid()
    sessions = watch_sessions(live.services.sio)
    await client.disconnect()
    # The session is forgotten after socket.io's disconnect handler (which logs) has run.
    await sessions.until(lambda table: not table, "empty")
    text = "\n".join(caplog.messages)
    assert f"🟢 Client connected: {sid}" in text or "🟢 Client connected:" in text
    assert f"👤 User identified: {user['id']} socket:" in text
    assert "🔥 WebSocket: cases:updated emitted" in text
    assert f"💰 WebSocket: balance updated for user {user['id']}" in text
    assert any(m.startswith("🔴 Client disconnected:") and "reason:" in m for m in caplog.messages)
    assert any(m.startswith("POST /api/auth/register 201") for m in caplog.messages)


async def test_generated_request_ids_are_unique_16_hex_digits(live):
    """Without an acceptable X-Request-Id the server makes one: a per-process
    random prefix and a counter (cheaper than uuid4 per request)."""
    made = [(await live.api.get("/health", headers=headers)).headers["X-Request-Id"]
            for headers in ({}, {}, {"X-Request-Id": "bad id with spaces"}, {"X-Request-Id": ""})]
    assert len(set(made)) == 4 and all(len(i) == 16 and int(i, 16) >= 0 for i in made)
    assert len({i[:8] for i in made}) == 1  # one process, one prefix


def test_a_forked_process_makes_other_request_ids():
    made = ids._RequestIds()
    first = made.next()
    made.reset()  # what os.register_at_fork runs in a child
    assert made.next()[:8] != first[:8]
    assert len({made.next() for _ in range(10_000)}) == 10_000
