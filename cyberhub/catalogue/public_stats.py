"""Public statistics and the recent-drops feed."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from cyberhub.catalogue.models import DropItem, DropPublic, PublicStatsResponse
from cyberhub.platform.ids import as_utc, now
from cyberhub.store.db import Database

RECENT_DROPS = 20
NEWEST_FIRST = [("createdAt", -1), ("_id", -1)]
RECENT_WINDOW = timedelta(hours=1)


async def _newest(db: Database, query: dict, limit: int) -> list[dict]:
    return await db.openings.find(query).sort(NEWEST_FIRST).limit(limit).to_list(None)


async def recent_drop_docs(db: Database, limit: int = RECENT_DROPS, since: datetime | None = None) -> list[dict]:
    """The `limit` newest openings. When at least `limit` of them are not older
    than `since` (the oldest of the previous answer) or than an hour, only those
    are read — the same answer, since every opening left out is older than all
    of them — so neither store has to sort its whole history."""
    for bound in (since, now() - RECENT_WINDOW):
        if bound is not None:
            docs = await _newest(db, {"createdAt": {"$gte": bound}}, limit)
            if len(docs) >= limit:
                return docs
    return await _newest(db, {}, limit)


def drop_public(d: dict) -> DropPublic:
    return DropPublic(
        username=d["username"],
        item=DropItem(name=d["item"]["name"], rarity=d["item"]["rarity"], price=d["item"]["price"],
                      image=d["item"].get("image")),
        case_id=d["caseId"], case_name=d["caseName"], at=as_utc(d["createdAt"]),
    )


async def recent_drops(db: Database, limit: int = RECENT_DROPS) -> list[DropPublic]:
    return [drop_public(d) for d in await recent_drop_docs(db, limit)]


async def counts(db: Database) -> dict[str, int]:
    return {
        "users": await db.users.estimated_document_count(),
        "cases_opened": await db.openings.estimated_document_count(),
        "items_sold": await db.inventory.count_documents({"status": "sold"}),  # indexed
        "upgrades": await db.upgrades.estimated_document_count(),  # one record per upgrade
    }


class Snapshot:
    """One computation of the public stats, encoded once: the response is
    `head + <online> + tail`, so a request only formats the online count."""

    ONLINE = '"online":0'

    def __init__(self, number: int, counts: dict[str, int], drops: list[DropPublic], oldest: datetime | None) -> None:
        self.number = number
        self.counts = counts
        self.drops = drops
        self.oldest = oldest  # createdAt of the oldest drop listed (the next query's lower bound)
        body = PublicStatsResponse(**counts, online=0, recent_drops=drops).model_dump_json(by_alias=True)
        # The first match is the key itself: a quote inside a JSON string is escaped.
        head, found, tail = body.partition(self.ONLINE)
        assert found, body
        self.head, self.tail = head + '"online":', tail

    def body(self, online: int) -> str:
        return f"{self.head}{online}{self.tail}"

    def etag(self, online: int) -> str:
        return f'"s{self.number}-{online}"'


class PublicStatsCache:
    """GET /api/stats/public is public and polled by every visitor's live feed:
    compute it at most once per MAX_AGE_SECONDS per process, one computation at
    a time, whatever the number of callers."""

    MAX_AGE_SECONDS = 2.0

    def __init__(self) -> None:
        self._value: tuple[float, Snapshot] | None = None
        self._lock = asyncio.Lock()
        self._computed = 0

    async def snapshot(self, db: Database) -> Snapshot:
        value = self._value
        if value is not None and time.monotonic() - value[0] < self.MAX_AGE_SECONDS:
            return value[1]
        async with self._lock:
            value = self._value
            if value is None or time.monotonic() - value[0] >= self.MAX_AGE_SECONDS:
                since = value[1].oldest if value is not None else None
                stats = await counts(db)
                docs = await recent_drop_docs(db, since=since)
                self._computed += 1
                oldest = docs[-1]["createdAt"] if len(docs) >= RECENT_DROPS else None
                value = self._value = (time.monotonic(), Snapshot(self._computed, stats, [
                    drop_public(d) for d in docs], oldest))
            return value[1]

    async def get(self, db: Database) -> tuple[dict, list[DropPublic]]:
        snap = await self.snapshot(db)
        return snap.counts, snap.drops
