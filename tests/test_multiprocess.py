"""Several backend processes behind one audience: with REDIS_URL set, an event
caused by a REST call on process B reaches a Socket.IO client connected to
process A; without it, events stay in the process that emitted them.

Each process is a real `python run.py`; Redis is a real `redis-server`.
Unless MONGODB_URI is set, each process has its own embedded store. A socket
is authenticated as REST is (the token's user must exist on the process it
connects to, with the token's version), so the account used across processes
is the configured admin: every process creates it from the same settings,
with the same id.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from cyberhub.store import db as dbmod
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, JWT_SECRET, WEBHOOK_SECRET
from tests.support.client import Api, connect_socket
from tests.support.process import Process, start_redis, start_server

SHARED_SETTINGS = {
    "JWT_SECRET": JWT_SECRET,
    "PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "ADMIN_USERNAME": ADMIN_USERNAME,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "256",
    "ARGON2_PARALLELISM": "1",
    "SOCKET_PING_INTERVAL": "1",
    "SOCKET_PING_TIMEOUT": "2",
    "RATE_LIMIT_ENABLED": "false",  # not what these tests are about
}

StartBackend = Callable[..., Awaitable[tuple[Process, Api]]]


@pytest.fixture
async def redis() -> AsyncIterator[Process]:
    server = await start_redis()
    yield server
    await server.stop()


@pytest.fixture
async def backends() -> AsyncIterator[StartBackend]:
    """Starts `python run.py` processes sharing secrets and (if MONGODB_URI is
    set) one database; each is stopped with SIGTERM and must exit 0."""
    database = f"cyberhub_mp_{uuid.uuid4().hex[:12]}"
    started: list[Process] = []
    session = aiohttp.ClientSession()

    async def _start(name: str, **settings: str) -> tuple[Process, Api]:
        process = await start_server(name, MONGODB_DB=database, **SHARED_SETTINGS, **settings)
        started.append(process)
        return process, Api(f"http://127.0.0.1:{process.port}", session, WEBHOOK_SECRET)

    yield _start
    await session.close()
    codes = {p.name: await p.stop() for p in reversed(started)}
    if os.environ.get("MONGODB_URI"):
        store = dbmod.connect(os.environ["MONGODB_URI"], database)
        await store.client.drop_database(database)
        store.close()
    assert set(codes.values()) <= {0}, {p.name: p.output for p in started}


async def clients(api: Api) -> int:
    reply = await api.get("/health")
    assert reply.status == 200, reply
    return reply.body["clients"]


async def test_events_caused_on_b_reach_sockets_on_a_through_redis(redis, backends, sample_case):
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    _, api_a = await backends("backend-a", REDIS_URL=redis_url)
    _, api_b = await backends("backend-b", REDIS_URL=redis_url)

    # The configured admin exists, with the same id, on both processes' stores.
    logged_in = await api_b.post("/api/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert logged_in.status == 200, logged_in
    token, user = logged_in.body["token"], logged_in.body["user"]
    user_socket, on_a = await connect_socket(api_a.base_url, token=token)
    anon_socket, anon_on_a = await connect_socket(api_a.base_url, transports=["polling"])
    try:
        assert await user_socket.call("user:identify", {"userId": user["id"]}) == {"success": True}
        # /health counts the sockets of its own process only.
        assert await clients(api_a) == 2
        assert await clients(api_b) == 0

        created = await api_b.post("/api/admin/cases", sample_case, token=token)
        assert created.status == 201, created
        await on_a.wait_for("cases:updated")
        await anon_on_a.wait_for("cases:updated")

        paid = await api_b.pay(user["id"], 800)
        assert paid.status == 200 and paid.body == {"success": True, "duplicate": False}, paid
        assert await on_a.wait_for(f"balance:updated:{user['id']}") == [{"balance": 800}]

        case = created.body["case"]
        opened = await api_b.post("/api/cases/open", {"caseId": case["id"]}, token=token)
        assert opened.status == 200 and opened.body["balance"] == 300, opened
        await on_a.wait_for(f"balance:updated:{user['id']}", predicate=lambda d: d == {"balance": 300})
        await on_a.wait_for(f"inventory:updated:{user['id']}")
        drops = await anon_on_a.wait_for("drop:new")
        assert drops == [{
            "username": ADMIN_USERNAME,
            "item": {k: opened.body["item"][k] for k in ("name", "rarity", "price", "image")},
            "caseId": case["id"],
            "caseName": case["name"],
        }]
        # The drop was emitted after the user's private events, and the anonymous
        # socket on the same process received it: none of those reached it.
        assert [n for n in anon_on_a.names() if n.endswith(user["id"])] == []
    finally:
        await user_socket.disconnect()
        await anon_socket.disconnect()


async def test_without_redis_events_stay_in_the_process_that_emitted_them(backends, sample_case):
    _, api_a = await backends("backend-a")
    _, api_b = await backends("backend-b")
    socket_a, on_a = await connect_socket(api_a.base_url)
    socket_b, on_b = await connect_socket(api_b.base_url)
    try:
        admin_b = await api_b.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert (await api_b.post("/api/admin/cases", sample_case, token=admin_b)).status == 201
        await on_b.wait_for("cases:updated")  # B did emit it, to its own sockets

        # Barrier: an event caused on A after B's emit had completed arrives on
        # A, and B's event is not there.
        admin_a = await api_a.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert (await api_a.post("/api/admin/cases", sample_case, token=admin_a)).status == 201
        await on_a.wait_for("cases:updated")
        assert on_a.names().count("cases:updated") == 1

        # The same the other way round: A's event did not reach B's socket.
        assert (await api_b.post("/api/admin/cases", sample_case, token=admin_b)).status == 201
        await on_b.wait_for("cases:updated", count=2)
        assert on_b.names().count("cases:updated") == 2
    finally:
        await socket_a.disconnect()
        await socket_b.disconnect()



async def test_chat_crosses_processes_and_a_mute_on_one_is_honoured_on_the_other(redis, backends):
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    _, api_a = await backends("backend-a", REDIS_URL=redis_url)
    _, api_b = await backends("backend-b", REDIS_URL=redis_url)
    logged_in = await api_b.post("/api/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    token, user = logged_in.body["token"], logged_in.body["user"]
    sender_b, _ = await connect_socket(api_b.base_url, token=token)
    sender_a, _ = await connect_socket(api_a.base_url, token=token)
    viewer_a, on_a = await connect_socket(api_a.base_url, transports=["polling"])
    viewer_b, on_b = await connect_socket(api_b.base_url)
    try:
        # A message sent on B reaches the sockets on A.
        sent = await sender_b.call("chat:send", {"text": "hello from B"}, timeout=10)
        assert sent["success"] is True, sent
        assert await on_a.wait_for("chat:message") == [sent["message"]]

        # A mute made on A (each process has its own store here, unless MONGODB_URI
        # is set) is honoured on B.
        muted = await api_a.post(f"/api/admin/users/{user['id']}/mute", {"minutes": 5, "reason": "cross-check"},
                                 token=token)
        assert muted.status == 200, muted
        refused = await sender_b.call("chat:send", {"text": "muted?"}, timeout=10)
        assert refused["success"] is False and refused["code"] == "chat_muted", refused
        assert (await api_a.post(f"/api/admin/users/{user['id']}/unmute", token=token)).status == 200
        again = await sender_b.call("chat:send", {"text": "unmuted"}, timeout=10)
        assert again["success"] is True, again

        # A removal on A reaches the sockets on B.
        on_a_msg = await sender_a.call("chat:send", {"text": "remove me"}, timeout=10)
        assert on_a_msg["success"] is True, on_a_msg
        removed = await api_a.call("DELETE", f"/api/admin/chat/messages/{on_a_msg['message']['id']}", token=token)
        assert removed.status == 200, removed
        assert await on_b.wait_for("chat:removed") == [{"id": on_a_msg["message"]["id"]}]
        texts = [m["text"] for m in await on_a.wait_for("chat:message", 3)]
        assert texts == ["hello from B", "unmuted", "remove me"]
    finally:
        for client in (sender_b, sender_a, viewer_a, viewer_b):
            await client.disconnect()
