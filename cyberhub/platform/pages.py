"""Newest-first pages over (a time field, `_id`), with plain-text cursors.

A cursor is "<epoch millis>_<id>" of the last document of the previous page,
described completely by a pattern (the OpenAPI document uses `cursor_pattern`),
so any string that matches it is a position and nothing else is parsed.
Empty means the first page (`?limit=&cursor=` is how the frontend asks for
it). Used by the inventory, the admin ledger, payment deliveries and the audit
trail.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from cyberhub.platform.errors import BadRequest
from cyberhub.platform.ids import as_utc

HEX_ID = "[0-9a-f]{32}"  # ids made by ids.new_id()


def cursor_pattern(id_pattern: str = HEX_ID) -> str:
    # 13 digits of milliseconds reach the year 2286.
    return rf"^([0-9]{{1,13}}_{id_pattern})?$"


def millis(value: datetime) -> int:
    return int(as_utc(value).timestamp() * 1000)


def from_millis(value: int) -> datetime:
    # Clamped, so that every value a pattern allows is a position (year 9999 at most).
    return datetime.fromtimestamp(min(value, 253402300799999) / 1000, UTC)


def parse(cursor: str | None, id_pattern: str = HEX_ID) -> tuple[datetime, str] | None:
    """The position a cursor names; None for the first page; 400 if malformed."""
    if not cursor:
        return None
    match = re.fullmatch(rf"([0-9]{{1,13}})_({id_pattern})", cursor)
    if match is None:
        raise BadRequest("Invalid cursor: pass the nextCursor of the previous page", code="invalid_cursor")
    return from_millis(int(match[1])), match[2]


async def newest_first(collection: Any, query: dict, *, field: str, limit: int, cursor: str | None,
                       id_pattern: str = HEX_ID) -> tuple[list[dict], str | None]:
    """One page of `query` in (`field` desc, `_id` desc) order, and the cursor of
    the next page (None on the last)."""
    position = parse(cursor, id_pattern)
    if position is not None:
        stamp, doc_id = position
        query = {**query, "$or": [{field: {"$lt": stamp}}, {field: stamp, "_id": {"$lt": doc_id}}]}
    docs = await collection.find(query).sort([(field, -1), ("_id", -1)]).limit(limit + 1).to_list(None)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (f"{millis(docs[-1][field])}_{docs[-1]['_id']}" if more and docs else None)
