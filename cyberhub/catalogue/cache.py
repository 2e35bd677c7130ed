"""The public catalogue (GET /api/cases), serialized once per change, and the
active cases an opening draws from.

Every `cases:updated` makes every connected frontend refetch at once, so the
answer is built once — body bytes and ETag — and served from memory until the
catalogue changes. Each admin change bumps a stamp in the database (`meta`
collection) after its write, so every process — not only the one that made the
change — rebuilds on its next request. A process that dies between a write and
its bump leaves other processes stale for at most MAX_AGE_SECONDS.

GET /api/cases checks the stamp on every request (one `_id` read), so a change
made through another process shows at once. On the embedded store no other
process can share the data, and the servers that can (in this process) all
write through the same in-memory collection: there the stamp is read again
only when the `meta` collection's change version moved since the last read
(`store.db.change_version`), which is as exact and costs no store call. An
opening does not check on every request: it takes the
case from this cache when the stamp was checked less than OPEN_CHECK_SECONDS
ago (a change made through this process drops the cache at once), which saves
one store call per opening; see docs/MONEY.md.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cyberhub.catalogue import cases as catalogue
from cyberhub.catalogue.models import CaseListResponse
from cyberhub.store.db import Database, ReturnDocument, change_version

MAX_AGE_SECONDS = 5.0
OPEN_CHECK_SECONDS = 1.0
STAMP_ID = "catalogue"


async def bump(db: Database) -> None:
    """Record that the catalogue changed (call after the write succeeded)."""
    await db.meta.find_one_and_update({"_id": STAMP_ID}, {"$inc": {"stamp": 1}}, upsert=True,
                                      return_document=ReturnDocument.AFTER)


async def current_stamp(db: Database) -> int:
    doc = await db.meta.find_one({"_id": STAMP_ID})
    return doc["stamp"] if doc else 0


@dataclass
class Entry:
    stamp: int
    built_at: float
    checked_at: float
    body: bytes  # the encoded CaseListResponse
    etag: str  # a strong validator of `body`, computed once per build
    meta_version: int | None  # the embedded `meta` collection's change version before the stamp was read
    cases: dict[str, dict] = field(default_factory=dict)  # active case documents by id


class CatalogueCache:
    def __init__(self, max_age: float = MAX_AGE_SECONDS, open_check: float = OPEN_CHECK_SECONDS) -> None:
        self._entry: Entry | None = None
        self._versions: tuple[Database, Callable[[], int] | None] | None = None  # (db, its meta change version)
        self._max_age = max_age
        self.open_check_seconds = open_check

    def invalidate(self) -> None:
        """This process changed the catalogue: the next request rebuilds."""
        self._entry = None

    async def entry(self, db: Database) -> Entry:
        """The current catalogue, checked against the stamp now."""
        if self._versions is None or self._versions[0] is not db:
            self._versions = (db, change_version(db.meta))
        version = self._versions[1]
        seen = version() if version is not None else None
        entry = self._entry
        now = time.monotonic()
        fresh = entry is not None and now - entry.built_at < self._max_age
        if fresh and seen is not None and entry.meta_version == seen:
            entry.checked_at = now  # no write to `meta` since the stamp was read: it is unchanged
            return entry
        stamp = await current_stamp(db)
        if fresh and entry.stamp == stamp:
            entry.checked_at, entry.meta_version = now, seen
            return entry
        return await self._build(db, stamp, seen)

    async def body(self, db: Database) -> bytes:
        return (await self.entry(db)).body

    async def active_case(self, db: Database, case_id: str) -> dict:
        """The active case to open: from the cache when its stamp was checked less
        than OPEN_CHECK_SECONDS ago, else after checking; a case the cache does
        not hold is read from the store (404 if it is not active)."""
        entry = self._entry
        if entry is None or time.monotonic() - entry.checked_at >= self.open_check_seconds:
            entry = await self.entry(db)
        case = entry.cases.get(case_id)
        if case is None:
            return await catalogue.get_active(db, case_id)
        return case

    async def _build(self, db: Database, stamp: int, meta_version: int | None) -> Entry:
        # Read after the stamp: the cases are at least as new as the stamp says.
        cases = await catalogue.list_active(db)
        body = CaseListResponse(cases=[catalogue.public_case(c) for c in cases]).model_dump_json(
            by_alias=True).encode()
        now = time.monotonic()
        entry = Entry(stamp=stamp, built_at=now, checked_at=now, body=body, meta_version=meta_version,
                      etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"', cases={c["_id"]: c for c in cases})
        if self._entry is None or stamp >= self._entry.stamp:
            self._entry = entry
        return entry
