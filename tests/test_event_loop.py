"""EVENT_LOOP: `python run.py` runs on uvloop unless told otherwise, says so
at start-up, and serves the whole job on either loop — here a real process on
each, a default (polling, then upgraded) Socket.IO client and an opening with
its events. The rest of the suite runs on the loop production runs
(tests/conftest.py); `EVENT_LOOP=asyncio pytest` runs it on the standard one."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib import metadata

import aiohttp
import pytest
import uvloop  # a pinned requirement: the default loop

from cyberhub.server.eventloop import EventLoopUnavailable, choose_event_loop
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, JWT_SECRET, WEBHOOK_SECRET
from tests.support.client import Api, connect_socket
from tests.support.process import start_server
from tests.test_startup import assert_one_clear_error, spawn

SETTINGS = {"JWT_SECRET": JWT_SECRET, "PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET, "ADMIN_USERNAME": ADMIN_USERNAME,
            "ADMIN_PASSWORD": ADMIN_PASSWORD, "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "256",
            "ARGON2_PARALLELISM": "1", "SOCKET_PING_INTERVAL": "1", "SOCKET_PING_TIMEOUT": "2"}


async def test_the_suite_runs_on_the_loop_run_py_would_choose():
    loop_type = type(asyncio.get_running_loop())
    if os.environ.get("EVENT_LOOP", "auto") == "asyncio":
        assert not loop_type.__module__.startswith("uvloop")
    else:
        assert loop_type is uvloop.Loop


@pytest.mark.parametrize(("choice", "logged"), [
    ("auto", f"event loop: uvloop {metadata.version('uvloop')}"),
    ("uvloop", f"event loop: uvloop {metadata.version('uvloop')}"),
    ("asyncio", "event loop: asyncio)"),
])
async def test_a_real_server_on_each_loop_serves_a_default_client_and_an_opening(choice, logged, sample_case):
    server = await start_server(f"loop-{choice}", EVENT_LOOP=choice, **SETTINGS)
    try:
        started = [line for line in server.lines if "running on port" in line]
        assert len(started) == 1 and logged in started[0], server.output
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{server.port}", session, WEBHOOK_SECRET)
            admin = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
            created = await api.post("/api/admin/cases", sample_case, token=admin)
            assert created.status == 201, created
            token, user = await api.register("loop_player")
            # The frontend's connection: polling first, then the upgrade.
            client, events = await connect_socket(api.base_url, token=token, transports=["polling", "websocket"])
            try:
                paid = await api.pay(user["id"], 500)
                assert paid.status == 200, paid
                await events.wait_for(f"balance:updated:{user['id']}", predicate=lambda d: d == {"balance": 500})
                opened = await api.post("/api/cases/open", {"caseId": created.body["case"]["id"]}, token=token)
                assert opened.status == 200, opened
                price = sample_case["price"]
                await events.wait_for(f"balance:updated:{user['id']}",
                                      predicate=lambda d: d == {"balance": 500 - price})
                await events.wait_for(f"inventory:updated:{user['id']}")
                await events.wait_for("drop:new")
                assert client.transport() == "websocket"
            finally:
                await client.disconnect()
    finally:
        assert await server.stop() == 0, server.output


async def test_a_server_asked_for_uvloop_without_it_refuses_to_start(tmp_path):
    # An importable `uvloop` that fails as a missing one does, ahead of the real one.
    (tmp_path / "uvloop").mkdir()
    (tmp_path / "uvloop" / "__init__.py").write_text("raise ImportError('No module named uvloop')\n")
    for args in ((), ("--check-config",)):
        process = await spawn(*args, PORT="0", EVENT_LOOP="uvloop", PYTHONPATH=str(tmp_path))
        assert await process.wait() == 2
        assert_one_clear_error(process, "EVENT_LOOP=uvloop but uvloop is not installed")
    # auto falls back to the standard loop and serves
    server = await start_server("loop-fallback", EVENT_LOOP="auto", PYTHONPATH=str(tmp_path), **SETTINGS)
    try:
        assert any("event loop: asyncio)" in line for line in server.lines), server.output
    finally:
        assert await server.stop() == 0, server.output


async def test_check_config_refuses_an_unknown_loop():
    process = await spawn("--check-config", EVENT_LOOP="trio")
    assert await process.wait() == 2
    assert_one_clear_error(process, "EVENT_LOOP: Input should be 'auto', 'uvloop' or 'asyncio'")


def test_uvloop_required_but_missing_is_refused_and_auto_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` meets where it is not installed
    with pytest.raises(EventLoopUnavailable, match="EVENT_LOOP=uvloop but uvloop is not installed"):
        choose_event_loop("uvloop")
    assert choose_event_loop("auto") is asyncio.new_event_loop
    assert choose_event_loop("asyncio") is asyncio.new_event_loop
