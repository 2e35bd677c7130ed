"""The case catalogue: versioned cases managed by admins.

The `cases` document holds the current version (content + `version` number)
and is the one document an opening reads, so price and odds always come from
the same version. Every version is also copied to `case_versions`
(`_id = "<caseId>:<version>"`) so that past openings stay verifiable. An edit
is a compare-and-set on the version number; the archive copy is written
after it and re-written by recovery if a crash fell in between.
"""

from __future__ import annotations

from cyberhub.catalogue.models import CaseInput, CaseItemPublic, CasePublic
from cyberhub.platform.errors import Conflict, NotFound
from cyberhub.platform.ids import new_id, now
from cyberhub.store.db import Database, DuplicateKeyError, ReturnDocument

CONTENT_FIELDS = ("name", "price", "image", "items")


def _content(data: CaseInput) -> dict:
    return {
        "name": data.name,
        "price": data.price,
        "image": data.image,
        "items": [
            {"id": new_id()[:16], "name": i.name, "rarity": i.rarity, "price": i.price,
             "weight": i.weight, "image": i.image}
            for i in data.items
        ],
    }


def version_id(case_id: str, version: int) -> str:
    return f"{case_id}:{version}"


def snapshot(case: dict) -> dict:
    """The frozen version (price, items, weights) that an opening draws from."""
    return {"caseId": case["_id"], "version": case["version"], **{k: case[k] for k in CONTENT_FIELDS}}


async def _archive(db: Database, case: dict) -> None:
    doc = {**snapshot(case), "createdAt": case["updatedAt"],
           "adminId": case.get("updatedBy", case.get("createdBy"))}
    await db.case_versions.replace_one({"_id": version_id(case["_id"], case["version"])}, doc, upsert=True)


async def create_case(db: Database, data: CaseInput, *, admin_id: str) -> dict:
    stamp = now()
    case = {"_id": new_id(), **_content(data), "version": 1, "active": True,
            "createdAt": stamp, "updatedAt": stamp, "createdBy": admin_id}
    await _archive(db, case)  # archive first: a crash leaves only an unreferenced copy
    await db.cases.insert_one(case)
    return case


REPLACE_ATTEMPTS = 10


async def replace_case(db: Database, case_id: str, data: CaseInput, *, admin_id: str | None = None) -> dict:
    """Make `data` the case's next version. A replace has no precondition, so
    losing the compare-and-set to a concurrent edit just means trying again on
    top of the version that won."""
    content = _content(data)
    for _ in range(REPLACE_ATTEMPTS):
        current = await get_active(db, case_id)
        # Archive the version being replaced first: if its copy was lost in a crash,
        # this is the last moment its content is known.
        await _archive(db, current)
        updated = await db.cases.find_one_and_update(
            {"_id": case_id, "active": True, "version": current["version"]},
            {"$set": {**content, "updatedAt": now(), "updatedBy": admin_id}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None:
            await _archive(db, updated)
            return updated
    await get_active(db, case_id)  # deleted meanwhile → 404
    raise Conflict("The case is being edited by others right now; retry", code="edit_conflict")


async def delete_case(db: Database, case_id: str) -> None:
    """Hide the case; its versions, openings and inventory items stay."""
    result = await db.cases.update_one(
        {"_id": case_id, "active": True}, {"$set": {"active": False, "deletedAt": now()}}
    )
    if not result.matched_count:
        raise NotFound("Case not found", code="case_not_found")


async def restore_case(db: Database, case_id: str) -> dict:
    """List a deleted case again, as the version it was deleted at."""
    case = await db.cases.find_one_and_update(
        {"_id": case_id, "active": False}, {"$set": {"active": True}, "$unset": {"deletedAt": ""}},
        return_document=ReturnDocument.AFTER,
    )
    if case is None:
        if await db.cases.find_one({"_id": case_id}, projection={"_id": 1}) is None:
            raise NotFound("Case not found", code="case_not_found")
        raise Conflict("The case is not deleted", code="case_not_deleted")
    return case


async def get_active(db: Database, case_id: str) -> dict:
    case = await db.cases.find_one({"_id": case_id, "active": True})
    if case is None:
        raise NotFound("Case not found", code="case_not_found")
    return case


async def list_active(db: Database) -> list[dict]:
    return await db.cases.find({"active": True}).sort([("createdAt", 1), ("_id", 1)]).to_list(None)


async def get_version(db: Database, case_id: str, version: int) -> dict:
    doc = await db.case_versions.find_one({"_id": version_id(case_id, version)})
    if doc is None:
        case = await db.cases.find_one({"_id": case_id, "version": version})
        if case is None:
            raise NotFound("Case version not found", code="case_version_not_found")
        doc = snapshot(case)
    return doc


async def repair_archive(db: Database) -> int:
    """Re-write archive copies missing after a crash; returns how many."""
    repaired = 0
    for case in await db.cases.find({}).to_list(None):
        try:
            if await db.case_versions.find_one({"_id": version_id(case["_id"], case["version"])}) is None:
                await _archive(db, case)
                repaired += 1
        except DuplicateKeyError:
            continue
    return repaired


def public_case(doc: dict, *, case_id: str | None = None) -> CasePublic:
    total = sum(item["weight"] for item in doc["items"])
    items = [
        CaseItemPublic(id=i["id"], name=i["name"], rarity=i["rarity"], price=i["price"],
                       weight=i["weight"], chance=i["weight"] / total, image=i.get("image"))
        for i in doc["items"]
    ]
    expected = sum(i["weight"] * i["price"] for i in doc["items"]) / total
    return CasePublic(
        id=case_id or doc.get("caseId") or doc["_id"], name=doc["name"], price=doc["price"],
        image=doc.get("image"), version=doc["version"], items=items,
        expected_value=expected, rtp=expected / doc["price"],
    )
