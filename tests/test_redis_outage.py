"""Redis (REDIS_URL) going away mid-run, with a real redis-server stopped
under a running server: the service treats Redis as optional, so /health stays
200 while the database answers (a balancer must not drop every backend at
once) and says `"relay": "down"`; this process's sockets keep their events;
lost relays and limit checks the shared store could not answer are counted in
/metrics; and logins stay throttled by this process's own counters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.client import connect_socket
from tests.support.process import Process, start_redis
from tests.test_rate_limits import assert_limited


@pytest.fixture
async def redis() -> AsyncIterator[Process]:
    server = await start_redis()
    yield server
    await server.stop()  # already stopped by the test: a no-op then


def metric(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics:\n{metrics}")


async def test_redis_stopped_mid_run_keeps_health_200_and_limits_per_process(start_live, redis):
    live = await start_live(redis_url=f"redis://127.0.0.1:{redis.port}/0", rate_limit_login_failures="2/minute")
    token, user = await live.api.register("outage", "the real password")
    client, rec = await connect_socket(live.base_url, token=token)
    try:
        healthy = await live.api.get("/health")
        assert healthy.status == 200 and healthy.body["status"] == "ok" and healthy.body["relay"] == "up", healthy

        assert await redis.stop() == 0  # Redis is gone from here on

        reply = await live.api.get("/health")
        assert reply.status == 200, reply
        assert reply.body["status"] == "ok" and reply.body["relay"] == "down", reply.body

        # Money and this process's own sockets still work; the relay is counted lost.
        assert (await live.api.pay(user["id"], 700)).status == 200
        assert await rec.wait_for(f"balance:updated:{user['id']}") == [{"balance": 700}]

        # Failed logins are still limited, by this process's own counters.
        for _ in range(2):
            wrong = await live.api.post("/api/auth/login", {"username": "outage", "password": "a wrong guess"})
            assert wrong.status == 401, wrong
        assert_limited(await live.api.post("/api/auth/login", {"username": "outage", "password": "a wrong guess"}))

        metrics = (await live.api.get("/metrics")).body
        assert metric(metrics, "cyberhub_relay_lost_total") >= 1
        assert metric(metrics, "cyberhub_rate_limit_fallback_total") >= 3
        assert 'cyberhub_rate_limited_total{rule="login_failures"} 1.0' in metrics
    finally:
        await client.disconnect()
