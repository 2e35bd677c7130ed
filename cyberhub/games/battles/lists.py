"""Battle lists: the lobby and the back office's list (statistics: stats.py)."""

from __future__ import annotations

from cyberhub.games.battles import seats as battles
from cyberhub.platform import pages
from cyberhub.platform.errors import BadRequest
from cyberhub.store.db import Database

CURSOR_PATTERN = pages.cursor_pattern()


def status_query(status: str) -> dict:
    if not status:
        return {"status": {"$in": list(battles.STATUSES)}}
    if status not in battles.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(battles.STATUSES)}", code="invalid_status")
    return {"status": status}


async def list_battles(db: Database, *, status: str, limit: int, cursor: str | None,
                       user_id: str = "") -> tuple[list[dict], str | None]:
    """Newest first; `user_id` (back office): battles that player sat in."""
    query = status_query(status)
    if user_id:
        query["slots.userId"] = user_id
    return await pages.newest_first(db.battles, query, field="createdAt", limit=limit, cursor=cursor)
