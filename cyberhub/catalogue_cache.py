"""The public catalogue (GET /api/cases), serialized once per change.

Every `cases:updated` makes every connected frontend refetch at once, so the
answer is built once and served from memory until the catalogue changes. Each
admin change bumps a stamp in the database (`meta` collection) after its
write, so every process — not only the one that made the change — rebuilds on
its next request. A process that dies between a write and its bump leaves
other processes stale for at most MAX_AGE_SECONDS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cyberhub import catalogue
from cyberhub.db import Database, ReturnDocument
from cyberhub.models import CaseListResponse

MAX_AGE_SECONDS = 5.0
STAMP_ID = "catalogue"


async def bump(db: Database) -> None:
    """Record that the catalogue changed (call after the write succeeded)."""
    await db.meta.find_one_and_update({"_id": STAMP_ID}, {"$inc": {"stamp": 1}}, upsert=True,
                                      return_document=ReturnDocument.AFTER)


async def current_stamp(db: Database) -> int:
    doc = await db.meta.find_one({"_id": STAMP_ID})
    return doc["stamp"] if doc else 0


@dataclass
class _Entry:
    stamp: int
    built_at: float
    body: str


class CatalogueCache:
    def __init__(self, max_age: float = MAX_AGE_SECONDS) -> None:
        self._entry: _Entry | None = None
        self._max_age = max_age

    async def body(self, db: Database) -> str:
        stamp = await current_stamp(db)
        entry = self._entry
        if entry and entry.stamp == stamp and time.monotonic() - entry.built_at < self._max_age:
            return entry.body
        # Read after the stamp: the cases are at least as new as the stamp says.
        cases = await catalogue.list_active(db)
        body = CaseListResponse(cases=[catalogue.public_case(c) for c in cases]).model_dump_json(by_alias=True)
        if self._entry is None or stamp >= self._entry.stamp:
            self._entry = _Entry(stamp=stamp, built_at=time.monotonic(), body=body)
        return body
