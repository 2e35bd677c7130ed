"""The admin audit trail: one `admin_audit` document per admin action (case
create/edit/delete/restore, wallet adjustment, suspend/restore), appended and
never edited. Newest first, paged by a plain-text cursor."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from cyberhub.db import Database, insert_once
from cyberhub.errors import BadRequest
from cyberhub.ids import as_utc, new_id, now

# "<createdAt epoch millis>_<entry id>"; empty = the first page.
CURSOR_PATTERN = r"^([0-9]{1,13}_[0-9a-f]{32})?$"
_CURSOR = re.compile(r"([0-9]{1,13})_([0-9a-f]{32})")


async def append(db: Database, *, admin_id: str, action: str, target: str, details: dict[str, Any] | None = None,
                 entry_id: str | None = None) -> dict:
    """`entry_id` makes the append idempotent (e.g. the adjustment's id)."""
    entry = {"_id": entry_id or new_id(), "adminId": admin_id, "action": action, "target": target,
             "details": details or {}, "createdAt": now()}
    if entry_id:
        await insert_once(db.admin_audit, entry)
    else:
        await db.admin_audit.insert_one(entry)
    return entry


def millis(value: datetime) -> int:
    return int(as_utc(value).timestamp() * 1000)


def from_millis(value: int) -> datetime:
    # Clamped, so that every cursor the pattern allows is a position (year 9999 at most).
    return datetime.fromtimestamp(min(value, 253402300799999) / 1000, UTC)


def parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise BadRequest("Invalid cursor: pass the nextCursor of the previous page", code="invalid_cursor")
    return from_millis(int(match[1])), match[2]


def after_cursor(position: tuple[datetime, str] | None, field: str = "createdAt") -> dict:
    """The filter for everything after `position` in (field desc, _id desc) order."""
    if position is None:
        return {}
    stamp, doc_id = position
    return {"$or": [{field: {"$lt": stamp}}, {field: stamp, "_id": {"$lt": doc_id}}]}


async def list_entries(db: Database, *, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    query = after_cursor(parse_cursor(cursor))
    docs = await db.admin_audit.find(query).sort([("createdAt", -1), ("_id", -1)]).limit(limit + 1).to_list(None)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (f"{millis(docs[-1]['createdAt'])}_{docs[-1]['_id']}" if more and docs else None)


def public_entry(doc: dict) -> dict:
    return {"id": doc["_id"], "adminId": doc["adminId"], "action": doc["action"], "target": doc["target"],
            "details": doc.get("details") or {}, "createdAt": as_utc(doc["createdAt"])}
