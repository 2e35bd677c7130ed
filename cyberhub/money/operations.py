"""Operation records: the intent of a multi-step money operation, written
before any money moves (see docs/MONEY.md). `_id` is the operation id; for
sales and payments it is a natural key ("sell:<itemId>", "pay:<paymentId>")
so that a duplicate request fails here, before anything else happens."""

from __future__ import annotations

from datetime import datetime

from cyberhub.platform.ids import now
from cyberhub.store.db import Database

PENDING, DONE = "pending", "done"


async def begin(db: Database, op_id: str, *, kind: str, user_id: str, **fields: object) -> dict:
    """Insert the pending operation; raises DuplicateKeyError if the id exists."""
    stamp = now()
    op = {"_id": op_id, "kind": kind, "userId": user_id, "state": PENDING,
          "createdAt": stamp, "updatedAt": stamp, **fields}
    await db.operations.insert_one(op)
    return op


async def replan(db: Database, op_id: str, **fields: object) -> bool:
    """Change a pending operation's plan (only before its money moved). False if
    the operation is gone: recovery discarded it, so it must not go on."""
    result = await db.operations.update_one({"_id": op_id, "state": PENDING},
                                            {"$set": {**fields, "updatedAt": now()}})
    return bool(result.matched_count)


async def finish(db: Database, op: dict) -> None:
    """Close the operation. If recovery wrongly discarded a live operation whose
    money then moved, the record is written back, closed (an upsert: only then,
    so the usual close does not send the whole record again)."""
    closed = {"state": DONE, "doneAt": now()}
    result = await db.operations.update_one({"_id": op["_id"]}, {"$set": closed})
    if result.matched_count:
        return
    rest = {k: v for k, v in op.items() if k not in ("_id", "state", "doneAt")}
    await db.operations.update_one({"_id": op["_id"]}, {"$set": closed, "$setOnInsert": rest}, upsert=True)


async def discard(db: Database, op_id: str) -> None:
    """Forget an operation whose money never moved."""
    await db.operations.delete_one({"_id": op_id, "state": PENDING})


async def get(db: Database, op_id: str) -> dict | None:
    return await db.operations.find_one({"_id": op_id})


async def pending_before(db: Database, cutoff: datetime) -> list[dict]:
    cursor = db.operations.find({"state": PENDING, "createdAt": {"$lte": cutoff}}).sort("createdAt", 1)
    return await cursor.to_list(None)
