"""The admin audit trail: one `admin_audit` document per admin action (case
create/edit/delete/restore, wallet adjustment, suspend/restore), appended and
never edited. Newest first, paged by a plain-text cursor."""

from __future__ import annotations

from typing import Any

from cyberhub.platform import pages
from cyberhub.platform.ids import as_utc, now, ordered_id
from cyberhub.store.db import Database, insert_once

# "<createdAt epoch millis>_<entry id>" (cyberhub/platform/pages.py); empty = the first page.
CURSOR_PATTERN = pages.cursor_pattern()

async def append(db: Database, *, admin_id: str, action: str, target: str, details: dict[str, Any] | None = None,
                 entry_id: str | None = None) -> dict:
    """`entry_id` makes the append idempotent (e.g. the adjustment's id)."""
    entry = {"_id": entry_id or ordered_id(), "adminId": admin_id, "action": action, "target": target,
             "details": details or {}, "createdAt": now()}
    if entry_id:
        await insert_once(db.admin_audit, entry)
    else:
        await db.admin_audit.insert_one(entry)
    return entry


async def list_entries(db: Database, *, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    return await pages.newest_first(db.admin_audit, {}, field="createdAt", limit=limit, cursor=cursor)


def public_entry(doc: dict) -> dict:
    return {"id": doc["_id"], "adminId": doc["adminId"], "action": doc["action"], "target": doc["target"],
            "details": doc.get("details") or {}, "createdAt": as_utc(doc["createdAt"])}
