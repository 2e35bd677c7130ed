"""Battle events over Socket.IO: the lobby (`battles:updated` to everyone,
through `LobbyFeed`) and each battle's room `battle:<id>` (`battle:round`,
`battle:finished`), joined
with `battle:watch` / `battle:unwatch` by any socket, anonymous too. A watch
costs reads and a full serialisation, so it counts against the socket's
`socket_events` rate limit, a socket watches at most MAX_WATCHED battles at
once, and an ended battle is answered without joining its room (nothing more
will be sent to it).

`register` adds the two socket handlers; the server wiring calls it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from cyberhub.games.battles import seats as battles
from cyberhub.games.battles.view import public_battle, round_payload
from cyberhub.platform.errors import AppError, BadRequest, RateLimited, ServiceUnavailable
from cyberhub.platform.metrics import Metrics
from cyberhub.platform.ratelimit import RateLimiter
from cyberhub.store.db import Database, PyMongoError

log = logging.getLogger("cyberhub.battles")

MAX_WATCHED = 10  # battle rooms one socket may be in at once
ENDED = (battles.FINISHED, battles.CANCELLED)


def room(battle_id: str) -> str:
    return f"battle:{battle_id}"


class LobbyFeed:
    """`battles:updated` to everyone: one broadcast at a time, each battle's
    latest state.

    Every create, join, leave, start, finish and cancel of every battle is a
    broadcast to every socket, and per socket events keep their emit order: a
    burst (100 battles filling at once: 600 broadcasts to 3,000 sockets) put
    seconds of lobby writes ahead of the `battle:round` events watchers wait
    for (measured: round lag p99 17.5 s against a 250 ms target). Here a
    battle's new summary waits in `pending` — a newer one replaces it in its
    place — until the lobby broadcast before it has been delivered, so at most
    one lobby broadcast is ever in the delivery queue, nobody waits for the
    lobby (a join answers at once), and every lobby viewer ends on each
    battle's latest state. States that a newer one replaced before its turn
    are not sent; the summary is the whole battle, so nothing is lost. During
    a burst the lobby also rests after each broadcast as long as it took
    (SHARE): rounds due meanwhile then find no lobby broadcast ahead of them
    half of the time (measured: round lag p99 422 → ~200 ms), and the lobby
    catches up when the burst is over."""

    SHARE = 0.5  # of the time, at most, spent delivering lobby broadcasts during a burst

    def __init__(self, emit: Callable[[dict], Awaitable[None]]) -> None:
        self._emit = emit  # one battles:updated broadcast; returns once it is delivered
        self._pending: dict[str, dict] = {}  # battle id -> its latest summary, oldest change first
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def publish(self, summary: dict) -> None:
        self._pending[summary["id"]] = summary
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                battle_id = next(iter(self._pending))
                began = loop.time()
                await self._emit(self._pending.pop(battle_id))
                # The lobby takes at most SHARE of the delivery time: after a
                # broadcast, rest in proportion, so that the rounds due meanwhile
                # find no lobby broadcast ahead of them half of the time.
                await asyncio.sleep((loop.time() - began) * (1 - self.SHARE) / self.SHARE)

    async def close(self) -> None:
        """Shutdown: the task ends (a broadcast it had started is in the delivery
        queue already), then what is still pending goes out, one by one."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending:
            battle_id = next(iter(self._pending))
            await self._emit(self._pending.pop(battle_id))


class BattleEvents:
    """Emitted after the write they announce; a failed emit is logged, never raised."""

    def __init__(self, sio: socketio.AsyncServer, metrics: Metrics) -> None:
        self.sio, self.metrics = sio, metrics
        self.lobby_feed = LobbyFeed(lambda summary: self._emit("battles:updated", {"battle": summary}))

    async def _emit(self, event: str, data: Any, *, to: str | None = None) -> None:
        try:
            await self.sio.emit(event, data, room=to)
        except Exception:
            log.exception("Emit of %s failed", event)
            return
        self.metrics.emitted(event)

    async def lobby(self, battle: dict) -> None:
        """Returns at once: the broadcast takes its turn in the lobby feed."""
        self.lobby_feed.publish(public_battle(battle, rounds=False))

    async def round(self, battle: dict, r: int) -> None:
        payload = round_payload(battle, r)
        await self._emit("battle:round", {"battleId": battle["_id"], **payload}, to=room(battle["_id"]))

    async def finished(self, battle: dict) -> None:
        view = public_battle(battle, rounds=False)
        await self._emit("battle:finished", {"battleId": battle["_id"], "winners": view["winners"],
                                             "totals": view["totals"], "serverSeed": view["serverSeed"],
                                             "publicSeed": view["publicSeed"]}, to=room(battle["_id"]))


def _battle_id(data: Any) -> str:
    battle_id = data.get("battleId") if isinstance(data, dict) else None
    if not isinstance(battle_id, str) or not 1 <= len(battle_id) <= 128:
        raise BadRequest("battleId is required", code="invalid_battle_id")
    return battle_id


def _watched(sio: socketio.AsyncServer, sid: str) -> list[str]:
    return [r for r in sio.rooms(sid) if isinstance(r, str) and r.startswith("battle:")]


def register(sio: socketio.AsyncServer, db: Database, limiter: RateLimiter | None = None) -> None:
    @sio.on("battle:watch")
    async def watch(sid: str, data: Any = None) -> dict:
        try:
            if limiter is not None:  # garbage counts too
                await limiter.hit("socket_events", sid)
            battle = await battles.get(db, _battle_id(data))
        except AppError as exc:
            return exc.envelope()
        except PyMongoError:
            return ServiceUnavailable().envelope()
        if battle["status"] in ENDED:  # nothing more will be sent to its room
            return {"success": True, "battle": public_battle(battle)}
        watched = _watched(sio, sid)
        if room(battle["_id"]) not in watched and len(watched) >= MAX_WATCHED:
            return RateLimited(f"A socket watches at most {MAX_WATCHED} battles; unwatch one first",
                               code="too_many_watched").envelope()
        # Joined before the battle is read again by the client's ack: a round
        # revealed after this point reaches it; the ack holds every earlier one.
        await sio.enter_room(sid, room(battle["_id"]))
        fresh = await db.battles.find_one({"_id": battle["_id"]}) or battle
        return {"success": True, "battle": public_battle(fresh)}

    @sio.on("battle:unwatch")
    async def unwatch(sid: str, data: Any = None) -> dict:
        try:
            battle_id = _battle_id(data)
        except AppError as exc:
            return exc.envelope()
        await sio.leave_room(sid, room(battle_id))
        return {"success": True}
