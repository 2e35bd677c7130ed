"""Real clients for tests: an HTTP API client (aiohttp) and Socket.IO event
recorders (python-socketio's AsyncClient)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import socketio

from cyberhub.money.webhook import sign

WAIT = 10.0  # upper bound for an awaited event; a passing test never waits this long


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


class Api:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, webhook_secret: str) -> None:
        self.base_url, self.session, self.webhook_secret = base_url, session, webhook_secret

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base_url + path, data=data, headers=hdrs) as resp:
            text = await resp.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return Reply(resp.status, parsed, resp.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, body, **kw)

    # --- domain helpers ---------------------------------------------------------
    async def register(self, username: str, password: str = "correct horse") -> tuple[str, dict]:
        reply = await self.post("/api/auth/register", {"username": username, "password": password})
        assert reply.status == 201, reply
        return reply.body["token"], reply.body["user"]

    async def login(self, username: str, password: str) -> str:
        reply = await self.post("/api/auth/login", {"username": username, "password": password})
        assert reply.status == 200, reply
        return reply.body["token"]

    def webhook(self, payload: dict | bytes, *, timestamp: int | None = None, secret: str | None = None
                ) -> tuple[bytes, dict[str, str]]:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        return raw, {"X-Signature": sign(secret or self.webhook_secret, raw, ts)}

    async def pay(self, user_id: str, amount: int, *, payment_id: str | None = None, status: str = "succeeded",
                  currency: str = "USD") -> Reply:
        payload = {"paymentId": payment_id or f"pay_{time.time_ns()}", "userId": user_id, "amount": amount,
                   "currency": currency, "status": status}
        raw, headers = self.webhook(payload)
        return await self.post("/api/payment/callback", raw=raw, headers=headers)


class Recorder:
    """Every event one Socket.IO client receives, in order, awaitable by name."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

    async def record(self, event: str, *args: Any) -> None:
        async with self._changed:
            self.events.append((event, args[0] if args else None))
            self._changed.notify_all()

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def of(self, name: str) -> list[Any]:
        return [data for n, data in self.events if n == name]

    async def wait_for(self, name: str, count: int = 1, predicate: Callable[[Any], bool] | None = None) -> list:
        def matching() -> list:
            return [d for n, d in self.events if n == name and (predicate is None or predicate(d))]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), WAIT)
        return matching()


async def until_relayed(sender: socketio.AsyncServer, receiver: Recorder) -> None:
    """Redis pub/sub drops what is published before a process has subscribed,
    and a server subscribes in the background after it starts: the sending
    server emits `probe` to everyone until the receiving client (on another
    server) has one."""
    async with asyncio.timeout(WAIT):
        while True:
            await sender.emit("probe")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.wait_for("probe"), 0.2)
                return


async def connect_socket(base_url: str, *, token: str | None = None, transports: list[str] | None = None
                         ) -> tuple[socketio.AsyncClient, Recorder]:
    client = socketio.AsyncClient(reconnection=False)
    recorder = Recorder()
    client.on("*", recorder.record)
    await client.connect(base_url, auth={"token": token} if token else None,
                         transports=transports or ["websocket"], wait_timeout=WAIT)
    return client, recorder


class SessionTable(dict):
    """engine.io's table of live sessions (`AsyncServer.sockets`, {eio sid:
    socket}), put in place by `watch_sessions` so that a test can await a change
    of it — a socket forgotten after its close — instead of polling."""

    def __init__(self, sockets: dict) -> None:
        super().__init__(sockets)
        self._changed = asyncio.Event()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed.set()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed.set()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._changed.set()
        return value

    async def until(self, check: Callable[[SessionTable], bool], what: str, *, limit: float = WAIT) -> None:
        """Returns once `check(self)` holds, re-checking at every change."""
        try:
            async with asyncio.timeout(limit):
                while not check(self):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"sessions: never {what} ({len(self)} open)") from None


def watch_sessions(sio: socketio.AsyncServer) -> SessionTable:
    """Replaces the server's engine.io session table with a SessionTable of
    the same sessions (engine.io and this project look it up by attribute
    each time, so every later change goes through it)."""
    table = SessionTable(sio.eio.sockets)
    sio.eio.sockets = table
    return table
