"""Upgrades: stake owned items for a chance at a more valuable catalogue item.

One recorded, recoverable operation (docs/MONEY.md, kind "upgrade"):
  1. the operation record holds the whole plan — staked item ids and value,
     the target (an item of an active case's current version), the chance,
     the seed pair, nonce, roll and outcome;
  2. the staked items go owned → upgraded in one conditional update keyed by
     the operation (`upgradeId`), so an item staked twice at once, or staked
     and sold at once, changes status once; if not every item could be
     taken, the ones taken are released and the request refused (409);
  3. one atomic update of the user advances the nonce — the stream openings
     use — and marks the operation, only if the seed hash and nonce are still
     the ones the roll used: the point of no return, like an opening's debit;
  4. the won item (`_id` = operation id), the upgrade record (`_id` = operation
     id) and a ledger entry (delta 0, reason "upgrade": no balance moves, but
     the marker of step 3 has its entry like every other), then close.
Recovery: first, one atomic update of the user either finds the marker of
step 3 or puts the id in `abortedOps` (wallet.abort), which step 3's filter
refuses. Marker or ledger entry → finish step 4 from the plan; aborted →
release the items this operation took and discard it (nothing happened). So a
live request whose step 3 stalled past the recovery grace cannot land it
after recovery gave the items back: its move is refused and it answers 503.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cyberhub.catalogue import fairness
from cyberhub.catalogue.models import DropItem, FairPublic
from cyberhub.games.upgrades.models import UpgradeFeedPublic, UpgradePublic, UpgradeResponse, UpgradeTarget
from cyberhub.money import operations, wallet
from cyberhub.money.inventory import public_item
from cyberhub.platform.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from cyberhub.platform.ids import as_utc
from cyberhub.store.db import Database, insert_once

KIND = "upgrade"
REASON = "upgrade"  # ledger reason (delta 0)
STAKED = "upgraded"  # inventory status of a staked item


@dataclass(frozen=True)
class Rules:
    house_edge: float
    max_chance: float
    min_chance: float


def chance_for(stake_value: int, target_value: int, rules: Rules) -> float:
    """min(stake × (1 − edge) / target, max), one IEEE-754 double, not rounded further."""
    return min(stake_value * (1 - rules.house_edge) / target_value, rules.max_chance)


def draw(server_seed: str, client_seed: str, nonce: int, chance: float) -> tuple[float, bool]:
    """(roll, won): the Stake-standard float of HMAC(serverSeed, "<clientSeed>:<nonce>:0"); won ⇔ roll < chance."""
    roll = fairness.roll(server_seed, client_seed, nonce)
    return roll, roll < chance


@dataclass(frozen=True)
class UpgradeResult:
    body: dict  # the JSON answer of POST /api/upgrades (also stored for Idempotency-Key replays)
    feed: dict  # the public upgrade:new payload


def _target_of(case: dict, item_id: str) -> dict:
    item = next((i for i in case["items"] if i["id"] == item_id), None)
    if item is None:
        raise NotFound("Target item not found", code="target_not_found")
    return {"caseId": case["_id"], "caseVersion": case["version"], "itemId": item["id"], "name": item["name"],
            "rarity": item["rarity"], "price": item["price"], "image": item.get("image")}


async def _stake_items(db: Database, *, user_id: str, item_ids: list[str]) -> int:
    """Checks the items before anything is written; returns the stake value."""
    docs = await db.inventory.find({"_id": {"$in": item_ids}, "userId": user_id},
                                   projection={"status": 1, "price": 1}).to_list(None)
    if len(docs) != len(item_ids):
        raise NotFound("Item not found", code="item_not_found")
    if any(d["status"] != "owned" for d in docs):
        raise Conflict("Item is no longer in the inventory", code="item_not_owned")
    return sum(d["price"] for d in docs)


def _draw_plan(user: dict, chance: float) -> dict:
    fair = user["fair"]
    roll, won = draw(fair["serverSeed"], fair["clientSeed"], fair["nonce"], chance)
    return {"serverSeedHash": fair["serverSeedHash"], "clientSeed": fair["clientSeed"], "nonce": fair["nonce"],
            "roll": roll, "won": won}


async def _release(db: Database, op: dict) -> None:
    """Give back the items this operation took (only those: `upgradeId` is its id)."""
    await db.inventory.update_many({"_id": {"$in": op["itemIds"]}, "status": STAKED, "upgradeId": op["_id"]},
                                   {"$set": {"status": "owned"}, "$unset": {"upgradeId": "", "upgradedAt": ""}})


async def _give_up(db: Database, op: dict, error: Exception) -> Exception:
    await _release(db, op)
    await operations.discard(db, op["_id"])
    return error


async def upgrade(
    db: Database, *, user_id: str, item_ids: list[str], case: dict, target_item_id: str, op_id: str,
    rules: Rules, deadline_seconds: float, user: dict | None = None,
) -> UpgradeResult:
    """`case` is the active case (e.g. from the catalogue cache); `user` (balance,
    fair, username) as authentication read it, may be a moment old: the nonce
    guard refuses a stale one and the upgrade re-reads and rolls again.
    `deadline_seconds` as for openings: no nonce move is attempted after it."""
    clock = time.monotonic  # not loop.time(): uvloop's has millisecond resolution
    started = clock()
    if len(set(item_ids)) != len(item_ids):
        raise BadRequest("itemIds must be distinct", code="duplicate_items")
    target = _target_of(case, target_item_id)
    stake_value = await _stake_items(db, user_id=user_id, item_ids=item_ids)
    if target["price"] <= stake_value:
        raise BadRequest("The target must be worth more than the stake", code="upgrade_target_too_cheap")
    chance = chance_for(stake_value, target["price"], rules)
    if chance < rules.min_chance:
        raise BadRequest("The chance of this upgrade is too low", code="upgrade_chance_too_low")
    if user is None:
        user = await db.users.find_one({"_id": user_id}, projection=wallet.USER_FIELDS)
    if user is None:
        raise NotFound("User not found", code="user_not_found")

    plan = _draw_plan(user, chance)
    op = await operations.begin(db, op_id, kind=KIND, user_id=user_id, username=user["username"],
                                itemIds=list(item_ids), stakeValue=stake_value, target=target, chance=chance, **plan)
    taken = await db.inventory.update_many(
        # Sorted: two upgrades staking the same items take them in one order
        # (no two requests each holding half of the other's items).
        {"_id": {"$in": sorted(op["itemIds"])}, "userId": user_id, "status": "owned"},
        {"$set": {"status": STAKED, "upgradeId": op_id, "upgradedAt": op["createdAt"]}})
    if taken.modified_count != len(item_ids):  # sold or staked by a concurrent request meanwhile
        raise await _give_up(db, op, Conflict("Item is no longer in the inventory", code="item_not_owned"))
    while True:
        if clock() - started > deadline_seconds:
            raise await _give_up(db, op, ServiceUnavailable(
                "The upgrade took too long and was cancelled; nothing was changed", code="operation_timeout"))
        after = await wallet.move(
            db, user_id=user_id, op_id=op_id, delta=0,
            guard={"fair.serverSeedHash": plan["serverSeedHash"], "fair.nonce": plan["nonce"]},
            also_inc={"fair.nonce": 1},
        )
        if after is not None:
            break
        if await wallet.is_aborted(db, user_id=user_id, op_id=op_id):
            # Recovery took this operation back (the move stalled past its
            # grace): the items are being released, nothing happened.
            raise ServiceUnavailable("The upgrade was cancelled; nothing was changed", code="operation_timeout")
        # Lost the nonce to an opening or another upgrade, or the seed rotated:
        # roll again with the fresh state (the items stay staked meanwhile).
        user = await db.users.find_one({"_id": user_id}, projection=wallet.USER_FIELDS)
        if user is None:
            raise await _give_up(db, op, NotFound("User not found", code="user_not_found"))
        plan = _draw_plan(user, chance)
        if not await operations.replan(db, op_id, **plan):
            raise ServiceUnavailable("The upgrade was cancelled; nothing was changed", code="operation_timeout")
        op.update(plan)
    return await complete(db, op, balance_after=after["balance"])


def won_item(op: dict) -> dict:
    target = op["target"]
    return {
        "_id": op["_id"], "userId": op["userId"], "caseId": target["caseId"], "caseVersion": target["caseVersion"],
        "catalogueItemId": target["itemId"], "name": target["name"], "rarity": target["rarity"],
        "price": target["price"], "image": target.get("image"), "status": "owned", "wonAt": op["createdAt"],
        "source": "upgrade", "upgradeId": op["_id"],
    }


def record_of(op: dict) -> dict:
    """The upgrade record (`upgrades` collection): verification, statistics, the back office."""
    return {"_id": op["_id"], **{k: op[k] for k in (
        "userId", "username", "itemIds", "stakeValue", "target", "chance",
        "serverSeedHash", "clientSeed", "nonce", "roll", "won", "createdAt")},
        "targetValue": op["target"]["price"], "payout": op["target"]["price"] if op["won"] else 0}


async def complete(db: Database, op: dict, *, balance_after: int | None) -> UpgradeResult:
    """Step 4 for an upgrade whose nonce move happened (idempotent; recovery re-runs it)."""
    if op["won"]:
        await insert_once(db.inventory, won_item(op))
    record = record_of(op)
    await insert_once(db.upgrades, record)
    await wallet.record(db, op_id=op["_id"], user_id=op["userId"], delta=0, reason=REASON,
                        ref_id=op["target"]["caseId"], balance_after=balance_after,
                        extra={"stakeValue": record["stakeValue"], "payout": record["payout"]})
    await operations.finish(db, op)
    return result_of(op)


def result_of(op: dict) -> UpgradeResult:
    """What a finished upgrade answered (no reads, no writes): for replays too."""
    target = op["target"]
    upgrade = UpgradePublic(
        id=op["_id"], won=op["won"], chance=op["chance"], roll=op["roll"], stake_value=op["stakeValue"],
        target_value=target["price"], item_ids=op["itemIds"],
        target=UpgradeTarget(case_id=target["caseId"], case_version=target["caseVersion"], item_id=target["itemId"],
                             name=target["name"], rarity=target["rarity"], price=target["price"],
                             image=target.get("image")),
        item=public_item(won_item(op)) if op["won"] else None,
        fair=FairPublic(server_seed_hash=op["serverSeedHash"], client_seed=op["clientSeed"], nonce=op["nonce"]),
        created_at=as_utc(op["createdAt"]),
    )
    body = UpgradeResponse(upgrade=upgrade).model_dump(mode="json", by_alias=True)
    feed = UpgradeFeedPublic(
        username=op["username"], won=op["won"], chance=op["chance"], stake_value=op["stakeValue"],
        item=DropItem(name=target["name"], rarity=target["rarity"], price=target["price"], image=target.get("image")),
    ).model_dump(mode="json", by_alias=True)
    return UpgradeResult(body=body, feed=feed)


async def repair(db: Database, op: dict) -> bool:
    """Recovery (cyberhub/server/recovery.py KINDS): forwards if the nonce move
    happened, else abort it for good, release the staked items and discard."""
    if await wallet.abort(db, user_id=op["userId"], op_id=op["_id"]):
        await _release(db, op)
        await operations.discard(db, op["_id"])
        return False
    # Re-read the plan now that the move is known to have happened: a live
    # request re-rolls before each attempt, so only this copy is the final one.
    fresh = await operations.get(db, op["_id"])
    if fresh is not None and fresh["state"] == operations.PENDING:
        await complete(db, fresh, balance_after=None)
    return True


async def replay_body(db: Database, op: dict) -> dict:
    return result_of(op).body

