"""Players for the back office: search and sort, one player's money summary
from the ledger, their ledger, and suspension.

A suspension is `suspended: {reason, at, by}` on the user document. The one
authentication function (`accounts.user_for_token`, REST and Socket.IO
handshakes alike) refuses a suspended account with 403 account_suspended, so
every token stops at once; login answers the same after the password check.
Money and items are not touched.
"""

from __future__ import annotations

import re
from typing import Any

from cyberhub.accounts import suspension
from cyberhub.platform import pages
from cyberhub.platform.errors import BadRequest, Conflict, NotFound
from cyberhub.platform.ids import as_utc
from cyberhub.store.db import Database

SORTS = ("balance", "created", "active")
SORT_FIELDS = {"balance": "balance", "created": "createdAt", "active": "lastActiveAt"}
# q: a username prefix (case-insensitive) or an exact user id; empty = everyone.
QUERY_PATTERN = r"^[A-Za-z0-9_]{0,32}$"
_QUERY = re.compile(r"[A-Za-z0-9_]{0,32}")
# "<sort value>_<user id>": the balance in minor units, or epoch millis.
USER_CURSOR_PATTERN = r"^([0-9]{1,18}_[0-9a-f]{32})?$"
_USER_CURSOR = re.compile(r"([0-9]{1,18})_([0-9a-f]{32})")
# "<createdAt epoch millis>_<ledger entry id>"; entry ids are operation ids
# ("pay:<paymentId>", "sell:<itemId>", "reverse:<paymentId>", 32 hex digits),
# so everything after the first "_" is the id.
# `.` is read as Python reads it (any character but a newline), on both sides.
LEDGER_ID = ".{1,200}"
LEDGER_CURSOR_PATTERN = pages.cursor_pattern(LEDGER_ID)

LEDGER_REASONS = ("payment", "payment_reversal", "item_sale", "case_open", "admin_adjustment", "battle_entry",
                  "battle_refund")
USER_FIELDS = {"username": 1, "role": 1, "balance": 1, "suspended": 1, "createdAt": 1, "lastActiveAt": 1,
               "casesOpened": 1, "mutedUntil": 1}


def public_user(doc: dict) -> dict:
    suspended = doc.get("suspended")
    return {
        "id": doc["_id"], "username": doc["username"], "role": doc["role"], "balance": doc["balance"],
        "suspended": ({"reason": suspended["reason"], "at": as_utc(suspended["at"]), "by": suspended["by"]}
                      if suspended else None),
        "createdAt": as_utc(doc.get("createdAt")), "lastActiveAt": as_utc(doc.get("lastActiveAt")),
        "mutedUntil": as_utc(doc.get("mutedUntil")),  # chat mute (cyberhub/chat/moderation.py)
    }


async def get_user(db: Database, user_id: str) -> dict:
    doc = await db.users.find_one({"_id": user_id}, projection=USER_FIELDS)
    if doc is None:
        raise NotFound("User not found", code="user_not_found")
    return doc


def _sort_value(doc: dict, sort: str) -> int:
    value = doc.get(SORT_FIELDS[sort])
    if sort == "balance":
        return int(value or 0)
    return pages.millis(value) if value is not None else 0


async def list_users(db: Database, *, q: str, sort: str, limit: int, cursor: str | None
                     ) -> tuple[list[dict], str | None]:
    """Highest balance / newest / most recently active first. Accounts with no
    `lastActiveAt` (none since it is set at registration) are left out of
    sort=active."""
    if sort not in SORTS:
        raise BadRequest("sort must be balance, created or active", code="invalid_sort")
    if not _QUERY.fullmatch(q):
        raise BadRequest("q must be up to 32 letters, digits or underscores", code="invalid_query")
    field = SORT_FIELDS[sort]
    clauses: list[dict] = []
    if q:
        clauses.append({"$or": [{"usernameLower": {"$regex": "^" + re.escape(q.lower())}}, {"_id": q}]})
    if sort == "active":
        clauses.append({field: {"$ne": None}})
    if cursor:
        match = _USER_CURSOR.fullmatch(cursor)
        if match is None:
            raise BadRequest("Invalid cursor: pass the nextCursor of the previous page", code="invalid_cursor")
        value: Any = int(match[1]) if sort == "balance" else pages.from_millis(int(match[1]))
        clauses.append({"$or": [{field: {"$lt": value}}, {field: value, "_id": {"$lt": match[2]}}]})
    query = {"$and": clauses} if clauses else {}
    docs = await db.users.find(query, projection=USER_FIELDS).sort([(field, -1), ("_id", -1)]) \
        .limit(limit + 1).to_list(None)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (f"{_sort_value(docs[-1], sort)}_{docs[-1]['_id']}" if more and docs else None)


async def money_summary(db: Database, user_id: str) -> dict[str, Any]:
    """Sums of the player's ledger by reason (one aggregation on the userId index).

    net = spent + battleSpent − sold: what the player's play earned the site
    (case prices and battle entries paid, less battle refunds and items sold
    back). While the invariant holds it also equals
    deposited − reversed + adjusted − balance."""
    sums = {reason: 0 for reason in LEDGER_REASONS}
    rows = await db.ledger.aggregate([
        {"$match": {"userId": user_id}},
        {"$group": {"_id": "$reason", "total": {"$sum": "$delta"}, "count": {"$sum": 1},
                    # upgrade entries (delta 0) carry what was staked and what was won
                    "staked": {"$sum": "$stakeValue"}, "payout": {"$sum": "$payout"}}},
    ]).to_list(None)
    upgrades = {"count": 0, "staked": 0, "won": 0}
    for row in rows:
        sums[row["_id"]] = row["total"]
        if row["_id"] == "upgrade":
            upgrades = {"count": row["count"], "staked": row["staked"], "won": row["payout"]}
    spent, sold = -sums["case_open"], sums["item_sale"]
    battle_spent = -(sums["battle_entry"] + sums["battle_refund"])  # entries paid less those refunded
    return {"deposited": sums["payment"], "reversed": -sums["payment_reversal"], "sold": sold, "spent": spent,
            "battleSpent": battle_spent, "adjusted": sums["admin_adjustment"], "net": spent + battle_spent - sold,
            "upgrades": upgrades}


async def ledger_page(db: Database, *, user_id: str, limit: int, cursor: str | None
                      ) -> tuple[list[dict], str | None]:
    """Newest first."""
    return await pages.newest_first(db.ledger, {"userId": user_id}, field="createdAt", limit=limit, cursor=cursor,
                                    id_pattern=LEDGER_ID)


def public_entry(doc: dict) -> dict:
    return {"id": doc["_id"], "delta": doc["delta"], "reason": doc["reason"], "refId": doc.get("refId"),
            "balanceAfter": doc.get("balanceAfter"), "createdAt": as_utc(doc["createdAt"]),
            "adminId": doc.get("adminId"), "text": doc.get("text"), "shortfall": doc.get("shortfall")}


# --- suspension (the rule itself is accounts.suspension's) ------------------------------------


async def suspend(db: Database, *, user_id: str, reason: str, by: str) -> dict:
    """Suspend (the first suspension's reason is kept if already suspended)."""
    if user_id == by:
        raise Conflict("Admins cannot suspend themselves", code="cannot_suspend_self")
    doc = await suspension.suspend(db, user_id=user_id, reason=reason, by=by, projection=USER_FIELDS)
    return doc if doc is not None else await get_user(db, user_id)


async def restore(db: Database, *, user_id: str) -> dict:
    doc = await suspension.restore(db, user_id=user_id, projection=USER_FIELDS)
    if doc is None:
        raise NotFound("User not found", code="user_not_found")
    return doc
