"""Inventory: listing a user's items and selling ("claiming") one for its price.

A sale's operation id is "sell:<itemId>", so a second claim of the same item
fails on the unique `_id` before any money moves. `complete_sale` is
idempotent and is also what recovery re-runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cyberhub import operations, wallet
from cyberhub.db import Database, DuplicateKeyError
from cyberhub.errors import BadRequest, Conflict, NotFound
from cyberhub.ids import as_utc, now
from cyberhub.models import InventoryItemPublic

KIND = "sell"


def sale_id(item_id: str) -> str:
    return f"sell:{item_id}"


def public_item(doc: dict) -> InventoryItemPublic:
    return InventoryItemPublic(
        id=doc["_id"], name=doc["name"], rarity=doc["rarity"], price=doc["price"], image=doc.get("image"),
        case_id=doc["caseId"], case_version=doc["caseVersion"], status=doc["status"],
        won_at=as_utc(doc["wonAt"]), sold_at=as_utc(doc.get("soldAt")),
    )


# A page position: the last item's wonAt in epoch milliseconds and its id.
# Plain text that a pattern describes completely (the OpenAPI document uses
# CURSOR_PATTERN), so any string that matches it is a valid position and
# nothing else is parsed. 13 digits reach the year 2286. Empty means the first
# page (`?limit=&cursor=` is how the frontend asks for it).
CURSOR_PATTERN = r"^([0-9]{1,13}_[0-9a-f]{32})?$"
_CURSOR = re.compile(r"[0-9]{1,13}_[0-9a-f]{32}")


def _encode_cursor(doc: dict) -> str:
    millis = int(as_utc(doc["wonAt"]).timestamp() * 1000)
    return f"{millis}_{doc['_id']}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not _CURSOR.fullmatch(cursor):
        raise BadRequest("Invalid cursor: pass the nextCursor of the previous page", code="invalid_cursor")
    millis, item_id = cursor.split("_")
    return datetime.fromtimestamp(int(millis) / 1000, UTC), item_id


async def list_items(db: Database, *, user_id: str, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """Newest first; `nextCursor` is None on the last page."""
    query: dict = {"userId": user_id}
    if cursor:
        won_at, item_id = _decode_cursor(cursor)
        query["$or"] = [{"wonAt": {"$lt": won_at}}, {"wonAt": won_at, "_id": {"$lt": item_id}}]
    docs = await db.inventory.find(query).sort([("wonAt", -1), ("_id", -1)]).limit(limit + 1).to_list(None)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (_encode_cursor(docs[-1]) if more and docs else None)


@dataclass(frozen=True)
class SaleResult:
    item_id: str
    amount: int
    balance: int


async def claim(db: Database, *, user_id: str, item_id: str) -> SaleResult:
    item = await db.inventory.find_one({"_id": item_id, "userId": user_id})
    if item is None:
        raise NotFound("Item not found", code="item_not_found")
    if item["status"] != "owned":
        raise Conflict("Item already sold", code="item_already_sold")
    try:
        op = await operations.begin(db, sale_id(item_id), kind=KIND, user_id=user_id,
                                    itemId=item_id, amount=item["price"])
    except DuplicateKeyError:
        first = await operations.get(db, sale_id(item_id))
        if first is not None and first["state"] == operations.PENDING:
            await complete_sale(db, first)  # its first attempt died half-way: finish it now
        raise Conflict("Item already sold", code="item_already_sold") from None
    balance = await complete_sale(db, op)
    return SaleResult(item_id=item_id, amount=item["price"], balance=balance)


async def complete_sale(db: Database, op: dict) -> int:
    """Mark the item sold and credit its price, exactly once; returns the balance."""
    await db.inventory.update_one(
        {"_id": op["itemId"], "status": "owned"},
        {"$set": {"status": "sold", "soldAt": now(), "saleOpId": op["_id"]}},
    )
    await wallet.credit_once(db, user_id=op["userId"], op_id=op["_id"], amount=op["amount"],
                             reason="item_sale", ref_id=op["itemId"])
    await operations.finish(db, op)
    return await wallet.balance_after(db, op)
