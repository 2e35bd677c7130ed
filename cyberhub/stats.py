"""Public statistics and the recent-drops feed."""

from __future__ import annotations

import asyncio
import time

from cyberhub.db import Database
from cyberhub.ids import as_utc
from cyberhub.models import DropItem, DropPublic

RECENT_DROPS = 20


async def recent_drops(db: Database, limit: int = RECENT_DROPS) -> list[DropPublic]:
    docs = await db.openings.find({}).sort([("createdAt", -1), ("_id", -1)]).limit(limit).to_list(None)
    return [
        DropPublic(
            username=d["username"],
            item=DropItem(name=d["item"]["name"], rarity=d["item"]["rarity"], price=d["item"]["price"],
                          image=d["item"].get("image")),
            case_id=d["caseId"], case_name=d["caseName"], at=as_utc(d["createdAt"]),
        )
        for d in docs
    ]


async def counts(db: Database) -> dict[str, int]:
    return {
        "users": await db.users.estimated_document_count(),
        "cases_opened": await db.openings.estimated_document_count(),
        "items_sold": await db.inventory.count_documents({"status": "sold"}),  # indexed
    }


class PublicStatsCache:
    """GET /api/stats/public is public and polled by every visitor's live feed:
    compute it at most once per MAX_AGE_SECONDS per process, one computation at
    a time, whatever the number of callers."""

    MAX_AGE_SECONDS = 2.0

    def __init__(self) -> None:
        self._value: tuple[float, dict, list[DropPublic]] | None = None
        self._lock = asyncio.Lock()

    async def get(self, db: Database) -> tuple[dict, list[DropPublic]]:
        async with self._lock:
            if self._value is None or time.monotonic() - self._value[0] >= self.MAX_AGE_SECONDS:
                self._value = (time.monotonic(), await counts(db), await recent_drops(db))
            return self._value[1], self._value[2]
