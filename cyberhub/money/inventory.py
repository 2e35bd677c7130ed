"""Inventory: listing a user's items and selling ("claiming") one for its price.

A sale's operation id is "sell:<itemId>", so a second claim of the same item
fails on the unique `_id` before any money moves. `complete_sale` is
idempotent and is also what recovery re-runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cyberhub.money import operations, wallet
from cyberhub.money.models import InventoryItemPublic
from cyberhub.platform import pages
from cyberhub.platform.errors import Conflict, NotFound
from cyberhub.platform.ids import as_utc, now
from cyberhub.store.db import Database, DuplicateKeyError

KIND = "sell"


def sale_id(item_id: str) -> str:
    return f"sell:{item_id}"


def public_item(doc: dict) -> InventoryItemPublic:
    return InventoryItemPublic(
        id=doc["_id"], name=doc["name"], rarity=doc["rarity"], price=doc["price"], image=doc.get("image"),
        case_id=doc["caseId"], case_version=doc["caseVersion"], status=doc["status"],
        won_at=as_utc(doc["wonAt"]), sold_at=as_utc(doc.get("soldAt")),
        source=doc.get("source"), upgrade_id=doc.get("upgradeId"), battle_id=doc.get("battleId"),
    )


# Page positions: cyberhub/platform/pages.py ("<wonAt epoch millis>_<item id>").
CURSOR_PATTERN = pages.cursor_pattern()


async def list_items(db: Database, *, user_id: str, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """Newest first; `nextCursor` is None on the last page."""
    return await pages.newest_first(db.inventory, {"userId": user_id}, field="wonAt", limit=limit, cursor=cursor)


@dataclass(frozen=True)
class SaleResult:
    item_id: str
    amount: int
    balance: int


async def claim(db: Database, *, user_id: str, item_id: str) -> SaleResult:
    item = await db.inventory.find_one({"_id": item_id, "userId": user_id})
    if item is None:
        raise NotFound("Item not found", code="item_not_found")
    if item["status"] == "sold":
        raise Conflict("Item already sold", code="item_already_sold")
    if item["status"] != "owned":
        raise _not_owned()
    try:
        op = await operations.begin(db, sale_id(item_id), kind=KIND, user_id=user_id,
                                    itemId=item_id, amount=item["price"])
    except DuplicateKeyError:
        first = await operations.get(db, sale_id(item_id))
        # Its first attempt died half-way: finish it now (None: the item was staked meanwhile).
        if first is not None and first["state"] == operations.PENDING and await complete_sale(db, first) is None:
            raise _not_owned() from None
        raise Conflict("Item already sold", code="item_already_sold") from None
    balance = await complete_sale(db, op)
    if balance is None:
        raise _not_owned()
    return SaleResult(item_id=item_id, amount=item["price"], balance=balance)


def _not_owned() -> Conflict:
    return Conflict("Item is no longer in the inventory", code="item_not_owned")


async def complete_sale(db: Database, op: dict) -> int | None:
    """Mark the item sold and credit its price, exactly once; returns the balance.

    The credit follows only a status change made by this sale: an item that
    left the inventory another way first (staked in an upgrade) is not paid
    for — the sale is discarded and None returned, nothing credited."""
    marked = await db.inventory.update_one(
        {"_id": op["itemId"], "status": "owned"},
        {"$set": {"status": "sold", "soldAt": now(), "saleOpId": op["_id"]}},
    )
    if not marked.matched_count:
        item = await db.inventory.find_one({"_id": op["itemId"]}, projection={"saleOpId": 1})
        if item is None or item.get("saleOpId") != op["_id"]:
            await operations.discard(db, op["_id"])
            return None
    await wallet.credit_once(db, user_id=op["userId"], op_id=op["_id"], amount=op["amount"],
                             reason="item_sale", ref_id=op["itemId"])
    await operations.finish(db, op)
    return await wallet.balance_after(db, op)
