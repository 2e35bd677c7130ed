"""Abuse and operator-facing hardening found in review: socket origins, frame
sizes, strict digits, a dead Redis, and start-up refusals."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.process import free_port, server_env
from tests.test_economy import create_case, funded_user


async def test_websocket_from_an_origin_not_listed_is_refused_even_if_it_is_the_host(start_live):
    live = await start_live(cors_origins="https://frontend.example")
    url = f"{live.base_url}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers={"Origin": live.base_url})  # same as Host
        assert refused.value.status == 403
        ws = await session.ws_connect(url, headers={"Origin": "https://frontend.example"})
        first = await ws.receive_str()
        assert first.startswith("0{")  # engine.io open packet
        await ws.close()


async def test_oversized_socket_frames_close_the_connection(start_live):
    live = await start_live(socket_max_buffer_bytes=4096)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{live.base_url}/socket.io/?EIO=4&transport=websocket")
        assert (await ws.receive_str()).startswith("0{")
        await ws.send_str("4" + "x" * 100_000)
        message = await ws.receive()
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        # 1009 (message too big) in the close frame; Tornado then closes the TCP connection with the
        # frame's payload still unread, so the kernel sends a reset, which can overtake the close frame
        # at a client that has not read it yet (1006 at aiohttp; the same client on another loop or
        # process reads 1009). Either way the server ended the connection at once.
        assert ws.close_code in (1009, 1006)


async def test_non_ascii_digits_are_400_not_500(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "digits", 0)
    for path in ("/api/inventory?limit=²", "/api/inventory?limit=١٢"):
        reply = await live.api.get(path, token=token)
        assert reply.status == 400, path
    reply = await live.api.get(f"/api/fair/verify?serverSeed={'a' * 64}&clientSeed=x&nonce=²&caseId={case['id']}"
                               "&version=1")
    assert reply.status == 400 and reply.body["details"][0]["field"] == "nonce"


async def test_a_dead_redis_shows_in_health_but_takes_nothing_down(start_live):
    """REDIS_URL pointing nowhere (Redis died after start-up): /health stays 200
    (the database answers) and says relay "down"; rate-limited endpoints still
    answer (limits fall back to this process's counters)."""
    live = await start_live(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    health = await live.api.get("/health")
    assert health.status == 200 and health.body["status"] == "ok" and health.body["relay"] == "down", health
    reply = await live.api.post("/api/auth/register", {"username": "no_redis", "password": "long enough"})
    assert reply.status == 201


async def run_to_exit(**settings: str) -> tuple[int, str]:
    import asyncio
    import sys
    import tempfile

    from tests.support.process import ROOT

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), cwd=tempfile.mkdtemp(prefix="cyberhub-exit-"),
        env=server_env(PORT="0", HOST="127.0.0.1", **settings),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_bad_start_up_settings_exit_with_a_clear_line_and_no_secret():
    code, out = await run_to_exit(MONGODB_URI="mongodb://user:S3cretPw@@127.0.0.1:1/")
    assert code == 2 and "Invalid MONGODB_URI" in out and "S3cretPw" not in out and "Traceback" not in out
    code, out = await run_to_exit(ENVIRONMENT="production", JWT_SECRET="short-secret-value",
                                  PAYMENT_WEBHOOK_SECRET="p" * 40, CORS_ORIGINS="https://a.example",
                                  MONGODB_URI="mongodb://127.0.0.1:1/", METRICS_TOKEN="metrics-token-value")
    assert code == 2 and "at least 32 characters" in out
    assert "short-secret-value" not in out and "metrics-token-value" not in out


