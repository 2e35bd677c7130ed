"""The reveal loop and settlement of running battles.

Everything was drawn and stored when the battle started; revealing round r is
a compare-and-set of `revealed` from r to r+1 (so each round is announced
once, whichever process or pass gets there), BATTLE_ROUND_SECONDS apart.
After the last round the winners' items are inserted with ids derived from
(battle, round, slot), the draws are recorded for the cases' RTP statistics,
and the battle moves running → finished by one compare-and-set: settling
twice, or after a restart, inserts nothing twice and announces once.

Announcements survive a crash: `announced` counts the rounds whose
battle:round was emitted and `finishAnnounced` (False from the finish until
battle:finished, the lobby update and inventory updates went out) says
whether the end was; each is set after its emit, so a crash in between makes
the next run (or recovery pass) emit it again — at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from cyberhub.games.battles import draws
from cyberhub.games.battles import seats as battles
from cyberhub.games.battles.events import BattleEvents
from cyberhub.money import wallet
from cyberhub.platform.errors import AppError
from cyberhub.platform.ids import as_utc, now
from cyberhub.realtime.sockets import Notifier
from cyberhub.store.db import Database, ReturnDocument, insert_once

log = logging.getLogger("cyberhub.battles")


async def reveal_next(db: Database, battle: dict, at: datetime) -> dict | None:
    """Reveal round `battle["revealed"]` as of `at`; the battle after it, or None if another actor did."""
    return await db.battles.find_one_and_update(
        {"_id": battle["_id"], "status": battles.RUNNING, "revealed": battle["revealed"]},
        {"$inc": {"revealed": 1}, "$set": {"revealedAt": at}},
        return_document=ReturnDocument.AFTER,
    )


def next_due(battle: dict, round_seconds: float) -> datetime:
    """When the next round is due: a round after the previous one's due time
    (or the start), so the store's own time per round does not add up over a
    battle's rounds."""
    return as_utc(battle["revealedAt"]) + timedelta(seconds=round_seconds)


def inventory_items(battle: dict) -> list[dict]:
    items = []
    for r, row in enumerate(battle["draws"]):
        version = battle["cases"][r]
        for result in row:
            owner = result.get("owner")
            if owner is None:
                continue  # won by a bots-only team: the house keeps it
            item = result["item"]
            items.append({
                "_id": draws.item_id(battle["_id"], r, result["slot"]), "userId": battle["slots"][owner]["userId"],
                "caseId": version["caseId"], "caseVersion": version["version"], "catalogueItemId": item["id"],
                "name": item["name"], "rarity": item["rarity"], "price": item["price"], "image": item.get("image"),
                "status": "owned", "wonAt": battle["startedAt"], "source": "battle", "battleId": battle["_id"],
            })
    return items


async def settle(db: Database, battle: dict) -> dict | None:
    """Items and draw records (idempotent), then running → finished. The
    finished battle if this call finished it, else None."""
    for item in inventory_items(battle):
        await insert_once(db.inventory, item)
    for r, row in enumerate(battle["draws"]):
        version = battle["cases"][r]
        for result in row:
            # Same shape as an opening's record where the RTP alarm reads it (admin/stats.py).
            await insert_once(db.battle_draws, {
                "_id": f"{battle['_id']}:{r}:{result['slot']}", "battleId": battle["_id"],
                "caseId": version["caseId"], "caseVersion": version["version"], "price": version["price"],
                "item": {"price": result["item"]["price"]}, "createdAt": battle["startedAt"],
                "bot": battle["slots"][result["slot"]]["bot"],
            })
    return await db.battles.find_one_and_update(
        {"_id": battle["_id"], "status": battles.RUNNING, "revealed": len(battle["draws"])},
        {"$set": {"status": battles.FINISHED, "finishedAt": now(), "updatedAt": now(), "finishAnnounced": False}},
        return_document=ReturnDocument.AFTER,
    )


def announced(battle: dict) -> int:
    # A battle started before `announced` existed: take its revealed rounds as sent.
    return battle.get("announced", battle["revealed"])


class BattleRunner:
    """Runs the reveal of each running battle this process started or resumed, one task per battle."""

    def __init__(self, db: Database, events: BattleEvents, notifier: Notifier, round_seconds: float) -> None:
        self.db, self.events, self.notifier, self.round_seconds = db, events, notifier, round_seconds
        self.tasks: dict[str, asyncio.Task] = {}

    def ensure(self, battle_id: str) -> None:
        if battle_id not in self.tasks:
            self.tasks[battle_id] = asyncio.create_task(self.run(battle_id))

    async def run(self, battle_id: str) -> None:
        """Reveal what is left of the battle and settle it; errors end the run (logged)."""
        try:
            battle = await self.db.battles.find_one({"_id": battle_id})
            while True:
                if battle is None:
                    return
                await self.announce_rounds(battle)  # any revealed before a crash, not yet sent
                if battle["status"] == battles.FINISHED and battle.get("finishAnnounced") is False:
                    await self.announce_finished(battle)
                if battle["status"] != battles.RUNNING:
                    return
                if battle["revealed"] < len(battle["draws"]):
                    due = next_due(battle, self.round_seconds)
                    await asyncio.sleep(max(0.0, (due - now()).total_seconds()))
                    # Late by a whole round or more (e.g. resumed after a restart): the
                    # schedule starts again from now rather than revealing a burst.
                    at = due if (now() - due).total_seconds() < self.round_seconds else now()
                    revealed = await reveal_next(self.db, battle, at)
                    battle = revealed or await self.db.battles.find_one({"_id": battle_id})
                    continue
                finished = await settle(self.db, battle)
                if finished is not None:  # else someone else finished it, and announces it
                    await self.announce_finished(finished)
                return
        except asyncio.CancelledError:
            raise
        except Exception:  # the next recovery pass resumes it from the stored draws
            log.exception("Reveal of battle %s stopped; recovery will resume it", battle_id)
        finally:
            self.tasks.pop(battle_id, None)

    async def announce_rounds(self, battle: dict) -> None:
        """Emit each revealed round not yet announced, in order, marking each once sent."""
        for r in range(announced(battle), battle["revealed"]):
            await self.events.round(battle, r)
            await self.db.battles.update_one({"_id": battle["_id"], "announced": r}, {"$set": {"announced": r + 1}})

    async def announce_finished(self, battle: dict) -> None:
        await self.events.finished(battle)
        await self.events.lobby(battle)
        for user_id in _receivers(battle):
            await self.notifier.inventory_updated(user_id)
        await self.db.battles.update_one({"_id": battle["_id"]}, {"$set": {"finishAnnounced": True}})

    async def close(self) -> None:
        """Shutdown: stop revealing; the battles stay running and the next process resumes them."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.events.lobby_feed.close()  # the lobby's last states still go out


def _receivers(battle: dict) -> list[str]:
    owners = {result.get("owner") for row in battle["draws"] for result in row} - {None}
    return sorted({battle["slots"][slot]["userId"] for slot in owners})


async def recover(db: Database, runner: BattleRunner, *, grace_seconds: float, waiting_minutes: float) -> None:
    """The battles' recovery pass: cancel (and refund) battles waiting too
    long, start full ones whose starter died, and resume the reveal of
    running ones nobody has advanced within the grace."""
    stamp = now()
    for battle in await db.battles.find({"status": battles.WAITING,
                                         "createdAt": {"$lte": stamp - timedelta(minutes=waiting_minutes)}}
                                        ).to_list(None):
        try:
            cancelled = await battles.cancel(db, battle_id=battle["_id"], by="system", reason="timeout")
        except AppError:
            continue  # started or cancelled meanwhile
        await runner.events.lobby(cancelled)
        for user_id in battles.refunded_users(cancelled):
            await runner.notifier.balance_updated(user_id, await wallet.balance_of(db, user_id))
    # Only full ones (every seat paid) are read: a seat count per mode, as the store matches it.
    full = [{"size": n, "paid": n} for n in sorted({len(teams) for teams in draws.MODES.values()})]
    for battle in await db.battles.find({"status": battles.WAITING, "$or": full}).to_list(None):
        started = await battles.try_start(db, battle["_id"])
        if started is not None:
            await runner.events.lobby(started)
            runner.ensure(started["_id"])
    # Not advanced for a round's time plus the grace: its process is gone (or never was).
    stalled = stamp - timedelta(seconds=grace_seconds + runner.round_seconds)
    for battle in await db.battles.find({"status": battles.RUNNING, "revealedAt": {"$lte": stalled}}).to_list(None):
        runner.ensure(battle["_id"])
    # Finished, but the process died before announcing the end (its run would have by now).
    unannounced = {"finishAnnounced": False, "finishedAt": {"$lte": stamp - timedelta(seconds=grace_seconds)}}
    for battle in await db.battles.find(unannounced).to_list(None):
        runner.ensure(battle["_id"])
