"""Fixtures: every test gets a fresh database and a real server listening on
a free port, started through the same code path as `python run.py`.

Set MONGODB_URI to run the whole suite against a real MongoDB (each test uses
its own database, dropped afterwards); unset, the embedded store is used.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from cyberhub.server.eventloop import LoopFactory, choose_event_loop
from cyberhub.server.lifecycle import Server, start
from cyberhub.store import db as dbmod
from settings import Settings
from tests.support.chaos import Chaos, ChaosDatabase
from tests.support.client import Api

ADMIN_USERNAME, ADMIN_PASSWORD = "root_admin", "admin-password-1"
JWT_SECRET = "test-jwt-secret-" + "x" * 32
WEBHOOK_SECRET = "test-webhook-secret-" + "y" * 32


SERVERS_STARTED: list[int] = []  # ports of every in-process server of this run

# Everything the suite sends that must never appear in a log line.
SECRET_MARKERS = (JWT_SECRET, WEBHOOK_SECRET, ADMIN_PASSWORD, "correct horse", "scrape-me")
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")
HMAC_HEX = re.compile(r"v1=[0-9a-f]{64}")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, LoopFactory]:
    """Every async test, and so every in-process server, runs on the event loop
    `python run.py` would choose (EVENT_LOOP, default: uvloop when installed);
    `EVENT_LOOP=asyncio pytest` runs the suite on the standard library's loop,
    servers started as processes included (they inherit EVENT_LOOP)."""
    return {"loop": choose_event_loop(os.environ.get("EVENT_LOOP", "auto"))}


@pytest.fixture(scope="session", autouse=True)
def log_secret_scan() -> Any:
    """Records every log line of the whole run (at DEBUG) and fails the run if
    a secret, password, token or webhook signature ever reached the logs."""
    fd, path = tempfile.mkstemp(prefix="cyberhub-test-log-", suffix=".log")
    os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    logging.getLogger("cyberhub").setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    handler.close()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    os.unlink(path)
    if SERVERS_STARTED:
        assert "cyberhub." in text, "the scan must have seen the run's logs"
    leaks = [m for m in SECRET_MARKERS if m in text] + JWT_PATTERN.findall(text) + HMAC_HEX.findall(text)
    assert not leaks, f"secrets in logs: {leaks[:5]}"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_secret": JWT_SECRET,
        "payment_webhook_secret": WEBHOOK_SECRET,
        "admin_username": ADMIN_USERNAME,
        "admin_password": ADMIN_PASSWORD,
        "mongodb_uri": os.environ.get("MONGODB_URI"),
        # Cheap hashing keeps a suite that registers hundreds of users fast;
        # the code path is the production one.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 256,
        "argon2_parallelism": 1,
        "socket_ping_interval": 1.0,
        "socket_ping_timeout": 2.0,
        "recovery_grace_seconds": 0.0,
        "recovery_interval_seconds": 3600.0,
        "idempotency_wait_seconds": 5.0,
        # Every client of the suite is 127.0.0.1: the per-address limit stays on,
        # high; tests/test_socket_limits.py sets real ones.
        "socket_max_per_address": 100000,
        # The site-wide chat cap is a capacity guard sized for production viewers;
        # the chat tests that exercise it set their own.
        "chat_max_per_second": 1000,
        # Limits stay on (same code path) but high enough for a suite that hammers
        # one IP; tests/test_rate_limits.py sets real ones.
        **{name: "100000/minute" for name in Settings.model_fields
           if name.startswith("rate_limit_") and name != "rate_limit_enabled"},
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
async def raw_db() -> AsyncIterator[Any]:
    uri = os.environ.get("MONGODB_URI")
    name = f"cyberhub_test_{uuid.uuid4().hex[:12]}"
    store = dbmod.connect(uri, name)
    yield store.db
    if uri:
        await store.client.drop_database(name)
    store.close()


@pytest.fixture
def chaos() -> Chaos:
    return Chaos()


@dataclass
class Live:
    server: Server
    api: Api
    db: Any  # the raw database, for checking what was stored
    chaos: Chaos
    base_url: str

    @property
    def services(self) -> Any:
        return self.server.services

    async def admin_token(self) -> str:
        return await self.api.login(ADMIN_USERNAME, ADMIN_PASSWORD)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def start_live(raw_db: Any, chaos: Chaos) -> AsyncIterator[Callable[..., Any]]:
    """Starts servers on the test's database; all are shut down at the end."""
    servers: list[Server] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=500))

    async def _start(**overrides: Any) -> Live:
        settings = make_settings(**overrides)
        server = await start(settings, ChaosDatabase(raw_db, chaos), port=0, host="127.0.0.1")
        servers.append(server)
        SERVERS_STARTED.append(server.port)
        base_url = f"http://127.0.0.1:{server.port}"
        return Live(server=server, api=Api(base_url, session, WEBHOOK_SECRET), db=raw_db, chaos=chaos,
                    base_url=base_url)

    yield _start
    for server in servers:
        chaos.down = False
        chaos.disarm()
        await server.shutdown()
    await session.close()


@pytest.fixture
async def live(start_live: Callable[..., Any], settings_overrides: dict[str, Any]) -> Live:
    return await start_live(**settings_overrides)


@pytest.fixture
def sample_case() -> dict:
    return {
        "name": "Starter Case",
        "price": 500,
        "image": "https://cdn.example/cases/starter.png",
        "items": [
            {"name": "Common Knife", "rarity": "common", "price": 100, "weight": 70},
            {"name": "Rare Gloves", "rarity": "rare", "price": 800, "weight": 25},
            {"name": "Legendary Dragon", "rarity": "legendary", "price": 5000, "weight": 5},
        ],
    }
