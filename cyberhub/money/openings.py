"""Opening a case: debit the price, draw provably fairly, add the item.

Steps (docs/MONEY.md): (1) an operation record holding the whole plan — the
case version, the seed pair and nonce, and the drawn item — is written first;
(2) one atomic update debits the price, advances the nonce and marks the
operation on the user, but only if the balance covers the price and the seed
pair and nonce are still the ones the draw used; (3) inventory item, opening
record and ledger entry, all keyed by the operation id; (4) the operation is
closed. `complete` finishes steps 3–4 and is what recovery re-runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cyberhub.catalogue import cases as catalogue
from cyberhub.catalogue import fairness
from cyberhub.catalogue.models import FairPublic
from cyberhub.money import operations, wallet
from cyberhub.money.inventory import public_item
from cyberhub.money.models import OpenCaseResponse
from cyberhub.platform.errors import Conflict, NotFound, ServiceUnavailable
from cyberhub.store.db import Database, insert_once

KIND = "open"


@dataclass(frozen=True)
class OpenResult:
    item: dict  # the inventory document
    balance: int
    fair: FairPublic
    drop: dict  # the public drop:new payload


def _plan(case: dict, user: dict) -> dict:
    version = catalogue.snapshot(case)
    fair = user["fair"]
    drawn = fairness.draw(fair["serverSeed"], fair["clientSeed"], fair["nonce"],
                          [i["weight"] for i in version["items"]])
    return {
        "caseId": case["_id"], "caseVersion": case["version"], "caseName": case["name"],
        "price": case["price"], "username": user["username"],
        "serverSeedHash": fair["serverSeedHash"], "clientSeed": fair["clientSeed"], "nonce": fair["nonce"],
        "roll": drawn.roll, "ticket": drawn.ticket, "itemIndex": drawn.index,
        "item": version["items"][drawn.index],
    }


async def open_case(
    db: Database, *, user_id: str, case_id: str, op_id: str, deadline_seconds: float,
    case: dict | None = None, user: dict | None = None,
) -> OpenResult:
    """`deadline_seconds` bounds how long after the start the debit may still be
    attempted; it is kept below RECOVERY_GRACE_SECONDS, so recovery never judges
    an opening that may still debit.

    `case` (the active case document, e.g. from the catalogue cache) and `user`
    (with `balance`, `fair` and `username`, e.g. as authentication read it) save
    a store call each; they may be a moment old: the debit's guard refuses a
    stale balance, nonce or seed, and the opening then re-reads the user."""
    clock = time.monotonic  # not loop.time(): uvloop's has millisecond resolution
    started = clock()
    if case is None:
        case = await catalogue.get_active(db, case_id)
    if user is None:
        user = await db.users.find_one({"_id": user_id}, projection=wallet.USER_FIELDS)
    if user is None:
        raise NotFound("User not found", code="user_not_found")
    op: dict | None = None
    while True:
        if user["balance"] < case["price"]:
            if op is not None:
                await operations.discard(db, op_id)
            raise Conflict("Insufficient balance", code="insufficient_balance")
        if clock() - started > deadline_seconds:
            if op is not None:
                await operations.discard(db, op_id)
            raise ServiceUnavailable("The opening took too long and was cancelled; nothing was charged",
                                     code="operation_timeout")
        plan = _plan(case, user)
        if op is None:
            op = await operations.begin(db, op_id, kind=KIND, user_id=user_id, **plan)
        elif await operations.replan(db, op_id, **plan):
            op.update(plan)
        else:
            raise ServiceUnavailable("The opening was cancelled; nothing was charged", code="operation_timeout")
        after = await wallet.move(
            db, user_id=user_id, op_id=op_id, delta=-case["price"],
            guard={"fair.serverSeedHash": plan["serverSeedHash"], "fair.nonce": plan["nonce"]},
            also_inc={"fair.nonce": 1, "casesOpened": 1},
        )
        if after is not None:
            break
        # Lost a race (another opening took this nonce, the seed rotated, or
        # the balance dropped): re-read and draw again with the fresh state.
        user = await db.users.find_one({"_id": user_id}, projection=wallet.USER_FIELDS)
    # Money moved: finish from the plan in hand, whatever happened to the record.
    return await complete(db, op, balance_after=after["balance"])


def inventory_item(op: dict) -> dict:
    item = op["item"]
    return {
        "_id": op["_id"], "userId": op["userId"], "caseId": op["caseId"], "caseVersion": op["caseVersion"],
        "catalogueItemId": item["id"], "name": item["name"], "rarity": item["rarity"], "price": item["price"],
        "image": item.get("image"), "status": "owned", "wonAt": op["createdAt"], "openingId": op["_id"],
    }


def drop_payload(op: dict) -> dict:
    item = op["item"]
    return {
        "username": op["username"],
        "item": {"name": item["name"], "rarity": item["rarity"], "price": item["price"], "image": item.get("image")},
        "caseId": op["caseId"], "caseName": op["caseName"],
    }


async def complete(db: Database, op: dict, *, balance_after: int | None) -> OpenResult:
    """Steps 3–4 for an opening whose debit has happened (idempotent)."""
    item = inventory_item(op)
    await insert_once(db.inventory, item)
    opening = {k: op[k] for k in ("userId", "username", "caseId", "caseName", "caseVersion", "price",
                                  "serverSeedHash", "clientSeed", "nonce", "roll", "ticket", "itemIndex", "item")}
    await insert_once(db.openings, {"_id": op["_id"], **opening, "itemId": op["_id"], "createdAt": op["createdAt"]})
    await wallet.record(db, op_id=op["_id"], user_id=op["userId"], delta=-op["price"], reason="case_open",
                        ref_id=op["caseId"], balance_after=balance_after)
    await operations.finish(db, op)
    return await result_of(db, op, balance_after=balance_after)


async def result_of(db: Database, op: dict, *, balance_after: int | None = None) -> OpenResult:
    """What a finished opening answered (no writes): for replays and recovery."""
    balance = balance_after if balance_after is not None else await wallet.balance_after(db, op)
    fair = FairPublic(server_seed_hash=op["serverSeedHash"], client_seed=op["clientSeed"], nonce=op["nonce"])
    return OpenResult(item=inventory_item(op), balance=balance, fair=fair, drop=drop_payload(op))


def response_body(result: OpenResult) -> dict:
    """The JSON body of POST /api/cases/open (also stored for Idempotency-Key replays)."""
    return OpenCaseResponse(item=public_item(result.item), balance=result.balance,
                            fair=result.fair).model_dump(mode="json", by_alias=True)
