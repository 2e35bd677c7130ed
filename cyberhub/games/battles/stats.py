"""The back office's battle statistics, summed by the store."""

from __future__ import annotations

from cyberhub.games.battles import seats as battles
from cyberhub.store.db import Database


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
    # Summed in the store (on the {status, finishedAt} index): no battle, nor its draws, is read here.
    # A battle whose draws have an owner paid a team with players; else the house kept them.
    by_receiver = {row["_id"]: row for row in await db.battles.aggregate([
        {"$match": finished_filter}, {"$unwind": "$draws"}, {"$unwind": "$draws"},
        {"$group": {"_id": "$_id", "value": {"$sum": "$draws.item.price"},
                    "owned": {"$sum": {"$cond": [{"$eq": ["$draws.owner", None]}, 0, 1]}}}},
        {"$group": {"_id": {"$gt": ["$owned", 0]}, "value": {"$sum": "$value"}, "battles": {"$sum": 1}}},
    ]).to_list(None)}
    bots = await db.battles.aggregate([
        {"$match": finished_filter}, {"$unwind": "$slots"}, {"$match": {"slots.bot": True}},
        {"$group": {"_id": None, "seats": {"$sum": 1}}},
    ]).to_list(None)
    paid, kept = (by_receiver.get(owned, {}).get("value", 0) for owned in (True, False))
    count = sum(row["battles"] for row in by_receiver.values())
    bot_seats = bots[0]["seats"] if bots else 0
    cancelled_filter: dict = {"status": battles.CANCELLED, **({"cancelledAt": bounds} if bounds else {})}
    return {"battles": count, "cancelled": await db.battles.count_documents(cancelled_filter),
            "entries": -money.get("battle_entry", 0), "refunds": money.get("battle_refund", 0),
            "paidToPlayers": paid, "keptByHouse": kept, "botSeats": bot_seats}
