"""The catalogue as admins see it: every case, deleted ones included, and
each case's archived versions (`case_versions`, with the admin who made each
version, recorded from this change on)."""

from __future__ import annotations

from cyberhub.catalogue import cases as catalogue
from cyberhub.platform.errors import NotFound
from cyberhub.platform.ids import as_utc
from cyberhub.store.db import Database


def admin_case(doc: dict) -> dict:
    public = catalogue.public_case(doc).model_dump(by_alias=True)
    return {**public, "active": bool(doc.get("active")), "createdAt": as_utc(doc.get("createdAt")),
            "deletedAt": as_utc(doc.get("deletedAt"))}


async def list_all(db: Database) -> list[dict]:
    docs = await db.cases.find({}).sort([("createdAt", 1), ("_id", 1)]).to_list(None)
    return [admin_case(d) for d in docs]


async def versions(db: Database, case_id: str) -> list[dict]:
    """Oldest first. A version whose archive copy was lost in a crash is the
    current document until recovery re-writes it, so it is listed from there."""
    case = await db.cases.find_one({"_id": case_id})
    if case is None:
        raise NotFound("Case not found", code="case_not_found")
    docs = await db.case_versions.find({"caseId": case_id}).sort("version", 1).to_list(None)
    if not any(d["version"] == case["version"] for d in docs):
        docs.append({**catalogue.snapshot(case), "createdAt": case.get("updatedAt"),
                     "adminId": case.get("updatedBy", case.get("createdBy"))})
    return [{"version": d["version"], "name": d["name"], "price": d["price"], "image": d.get("image"),
             "items": [{k: i.get(k) for k in ("id", "name", "rarity", "price", "weight", "image")} for i in d["items"]],
             "createdAt": as_utc(d.get("createdAt")), "adminId": d.get("adminId")} for d in docs]
