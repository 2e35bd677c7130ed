"""Public statistics and the recent-drops feed."""

from __future__ import annotations

from cyberhub.db import Database
from cyberhub.ids import as_utc
from cyberhub.models import DropItem, DropPublic

RECENT_DROPS = 20


async def recent_drops(db: Database, limit: int = RECENT_DROPS) -> list[DropPublic]:
    docs = await db.openings.find({}).sort([("createdAt", -1), ("_id", -1)]).limit(limit).to_list(None)
    return [
        DropPublic(
            username=d["username"],
            item=DropItem(name=d["item"]["name"], rarity=d["item"]["rarity"], price=d["item"]["price"],
                          image=d["item"].get("image")),
            case_id=d["caseId"], case_name=d["caseName"], at=as_utc(d["createdAt"]),
        )
        for d in docs
    ]


async def counts(db: Database) -> dict[str, int]:
    return {
        "users": await db.users.count_documents({}),
        "cases_opened": await db.openings.count_documents({}),
        "items_sold": await db.inventory.count_documents({"status": "sold"}),
    }
