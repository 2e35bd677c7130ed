"""Battle lists (lobby and back office) and the back office's battle statistics."""

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


async def stats(db: Database, *, time_range: dict) -> dict:
    """`time_range`: a {createdAt: bounds} filter (admin/stats.py's time_range).
    Entries and refunds come from the ledger; what finished battles gave away
    from the battles themselves (by finish time): items of a team with players
    go to the players, items of a bots-only team stay with the house."""
    bounds = time_range.get("createdAt", {})
    money = {row["_id"]: row["total"] for row in await db.ledger.aggregate([
        {"$match": {"reason": {"$in": ["battle_entry", "battle_refund"]}, **time_range}},
        {"$group": {"_id": "$reason", "total": {"$sum": "$delta"}}},
    ]).to_list(None)}
    finished_filter: dict = {"status": battles.FINISHED, **({"finishedAt": bounds} if bounds else {})}
    paid, kept, bot_seats, count = 0, 0, 0, 0
    for battle in await db.battles.find(finished_filter).to_list(None):
        count += 1
        bot_seats += sum(1 for s in battle["slots"] if s["bot"])
        value = sum(result["item"]["price"] for row in battle["draws"] for result in row)
        if any(result.get("owner") is not None for row in battle["draws"] for result in row):
            paid += value
        else:
            kept += value
    cancelled_filter: dict = {"status": battles.CANCELLED, **({"cancelledAt": bounds} if bounds else {})}
    return {"battles": count, "cancelled": await db.battles.count_documents(cancelled_filter),
            "entries": -money.get("battle_entry", 0), "refunds": money.get("battle_refund", 0),
            "paidToPlayers": paid, "keptByHouse": kept, "botSeats": bot_seats}
