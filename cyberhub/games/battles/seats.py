"""Case battles: the state machine (create, join, leave, bots, start, cancel).

A battle document holds its seats (`slots`, None = empty), `seated` and `paid`
counts and `rev`, a counter every seat change increments. Status moves only by
compare-and-set: creating → waiting (the creator paid) → running (every seat
paid, all draws stored in the same write) → finished; waiting → cancelled.

Money (docs/MONEY.md, "Case battles"): an entry is an operation record
(kind battle_entry), then the seat is taken by a compare-and-set (so the loser
of a race for the last seat is refused before being charged), then the guarded
debit, the ledger entry and the seat marked paid. A refund is always the credit
`refund:<entry op id>`, whoever sends it (a leave, a cancel, an entry that lost
to a cancel), so it happens at most once per entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from cyberhub.catalogue import cases as catalogue
from cyberhub.games.battles import draws
from cyberhub.games.battles.view import public_battle
from cyberhub.money import operations, wallet
from cyberhub.platform.errors import AppError, BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from cyberhub.platform.ids import new_id, now
from cyberhub.store.db import Database, DuplicateKeyError, ReturnDocument

ENTRY, LEAVE, CANCEL = "battle_entry", "battle_leave", "battle_cancel"
CREATING, WAITING, RUNNING, FINISHED, CANCELLED = "creating", "waiting", "running", "finished", "cancelled"
STATUSES = (WAITING, RUNNING, FINISHED, CANCELLED)  # the ones anyone sees


def refund_id(entry_op: str) -> str:
    return f"refund:{entry_op}"


async def get(db: Database, battle_id: str) -> dict:
    battle = await db.battles.find_one({"_id": battle_id})
    if battle is None or battle["status"] == CREATING:
        raise NotFound("Battle not found", code="battle_not_found")
    return battle


def _seat(slot: int, team: int, user: dict, op_id: str) -> dict:
    return {"slot": slot, "team": team, "userId": user["_id"], "username": user["username"], "bot": False,
            "clientSeed": user["fair"]["clientSeed"], "entryOp": op_id, "paid": False}


def _bot(slot: int, team: int) -> dict:
    return {"slot": slot, "team": team, "userId": None, "username": f"Bot {slot + 1}", "bot": True,
            "clientSeed": f"bot:{slot}", "entryOp": None, "paid": True}


# --- create -----------------------------------------------------------------------------------


async def create(db: Database, *, user: dict, case_ids: Sequence[str], mode: str, crazy: bool, op_id: str,
                 max_open: int) -> dict:
    """The creator pays the entry and sits in slot 0; 409 when they cannot
    pay (nothing is created) or already have `max_open` waiting battles."""
    versions = [catalogue.snapshot(await catalogue.get_active(db, case_id)) for case_id in case_ids]
    cost = sum(v["price"] for v in versions)
    if user["balance"] < cost:
        raise Conflict("Insufficient balance", code="insufficient_balance")
    teams = draws.MODES[mode]
    seed, seed_hash = draws.new_server_seed()
    battle_id = new_id()
    stamp = now()
    op = await operations.begin(db, op_id, kind=ENTRY, user_id=user["_id"], battleId=battle_id, slot=0,
                                amount=cost)
    slots: list[dict | None] = [None] * len(teams)
    slots[0] = _seat(0, teams[0], user, op_id)
    battle = {
        "_id": battle_id, "status": CREATING, "mode": mode, "crazy": crazy, "teams": teams, "size": len(teams),
        "cases": versions, "entryCost": cost, "slots": slots, "seated": 1, "paid": 0, "rev": 0,
        "createdBy": user["_id"], "createdAt": stamp, "updatedAt": stamp, "startedAt": None, "finishedAt": None,
        "serverSeed": seed, "serverSeedHash": seed_hash, "publicSeed": None, "revealed": 0, "announced": 0,
    }
    if not await _insert_in_open_slot(db, battle, max_open):
        await operations.discard(db, op["_id"])
        raise Conflict(f"At most {max_open} waiting battles per player", code="battle_limit")
    return await _pay(db, op)


def open_slot(user_id: str, k: int) -> str:
    return f"{user_id}:{k}"


async def _insert_in_open_slot(db: Database, battle: dict, max_open: int) -> bool:
    """BATTLE_MAX_OPEN_PER_USER without check-then-act: a creating or waiting
    battle holds one of its creator's `max_open` slots in `openSlot` (unique,
    sparse index), so concurrent creates cannot both take the last one. The
    slot is given back in the same write that moves the battle out of waiting
    (start, cancel) or with the battle itself (a creating battle deleted)."""
    for k in range(max_open):
        try:
            await db.battles.insert_one({**battle, "openSlot": open_slot(battle["createdBy"], k)})
            return True
        except DuplicateKeyError:
            continue  # that slot is held by another open battle
    return False


# --- join -------------------------------------------------------------------------------------


async def join(db: Database, *, user: dict, battle_id: str, slot: int | None) -> dict:
    battle = await get(db, battle_id)
    op: dict | None = None
    try:
        for _ in range(battle["size"] + 2):  # each retry follows someone else taking a seat
            _check_joinable(battle, user["_id"], slot)
            if user["balance"] < battle["entryCost"]:
                raise Conflict("Insufficient balance", code="insufficient_balance")
            target = slot if slot is not None else battle["slots"].index(None)
            if op is None:
                op = await operations.begin(db, new_id(), kind=ENTRY, user_id=user["_id"], battleId=battle_id,
                                            slot=target, amount=battle["entryCost"])
            elif await operations.replan(db, op["_id"], slot=target):
                op["slot"] = target
            else:
                raise ServiceUnavailable("The join was cancelled; nothing was charged", code="operation_timeout")
            taken = await db.battles.find_one_and_update(
                {"_id": battle_id, "status": WAITING, f"slots.{target}": None, "slots.userId": {"$ne": user["_id"]}},
                {"$set": {f"slots.{target}": _seat(target, battle["teams"][target], user, op["_id"]),
                          "updatedAt": now()}, "$inc": {"seated": 1, "rev": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if taken is not None:
                break
            battle = await get(db, battle_id)
        else:
            raise Conflict("The battle is full", code="battle_full")
    except AppError:
        if op is not None:  # no seat was taken: nothing to undo but the record
            await operations.discard(db, op["_id"])
        raise
    return await _pay(db, op)


def _check_joinable(battle: dict, user_id: str, slot: int | None) -> None:
    if slot is not None and slot >= battle["size"]:  # bad input for this battle, whatever its state
        raise BadRequest(f"This battle has slots 0 to {battle['size'] - 1}", code="battle_slot_invalid")
    if battle["status"] != WAITING:
        raise Conflict("The battle is not waiting for players", code="battle_not_waiting")
    if any(s is not None and s["userId"] == user_id for s in battle["slots"]):
        raise Conflict("You are already in this battle", code="battle_already_joined")
    if slot is not None and battle["slots"][slot] is not None:
        raise Conflict("That slot is taken", code="battle_slot_taken")
    if None not in battle["slots"]:
        raise Conflict("The battle is full", code="battle_full")


async def _pay(db: Database, op: dict) -> dict:
    """The seat is held: debit the entry, or free the seat when the player cannot pay.
    No deadline is needed: should recovery free the seat of a stalled entry
    whose debit then lands, complete_entry finds the seat gone and refunds."""
    after = await wallet.move(db, user_id=op["userId"], op_id=op["_id"], delta=-op["amount"])
    if after is None:
        await _release(db, op)
        await operations.discard(db, op["_id"])
        raise Conflict("Insufficient balance", code="insufficient_balance")
    return await complete_entry(db, op, balance_after=after["balance"])


async def _release(db: Database, op: dict) -> None:
    """Free the seat of an entry whose money never moved (a creating battle goes)."""
    if op["slot"] == 0:
        await db.battles.delete_one({"_id": op["battleId"], "status": CREATING, "slots.0.entryOp": op["_id"]})
    await db.battles.update_one(
        {"_id": op["battleId"], f"slots.{op['slot']}.entryOp": op["_id"], f"slots.{op['slot']}.paid": False},
        {"$set": {f"slots.{op['slot']}": None, "updatedAt": now()}, "$inc": {"seated": -1, "rev": 1}},
    )


async def complete_entry(db: Database, op: dict, *, balance_after: int | None) -> dict:
    """Steps after the debit (idempotent): ledger entry, seat marked paid (a
    creating battle opens), close. If the battle was cancelled meanwhile, the
    entry is refunded instead. Returns the battle."""
    await wallet.record(db, op_id=op["_id"], user_id=op["userId"], delta=-op["amount"], reason="battle_entry",
                        ref_id=op["battleId"], balance_after=balance_after)
    slot = op["slot"]
    seat_ours = {f"slots.{slot}.entryOp": op["_id"]}
    battle = await db.battles.find_one_and_update(
        {"_id": op["battleId"], "status": {"$in": [CREATING, WAITING]}, **seat_ours, f"slots.{slot}.paid": False},
        {"$set": {f"slots.{slot}.paid": True, "status": WAITING, "updatedAt": now()}, "$inc": {"paid": 1, "rev": 1}},
        return_document=ReturnDocument.AFTER,
    )
    if battle is None:
        battle = await db.battles.find_one({"_id": op["battleId"]})
        paid_here = battle is not None and battle["status"] != CANCELLED and _holds(battle, op)
        if not paid_here:  # lost to a cancel: the money goes back
            await wallet.credit_once(db, user_id=op["userId"], op_id=refund_id(op["_id"]), amount=op["amount"],
                                     reason="battle_refund", ref_id=op["battleId"])
            await operations.finish(db, op)
            raise Conflict("The battle is not waiting for players; your entry was refunded",
                           code="battle_not_waiting")
    await operations.finish(db, op)
    return battle


def _holds(battle: dict, op: dict) -> bool:
    seat = battle["slots"][op["slot"]]
    return seat is not None and seat["entryOp"] == op["_id"] and seat["paid"]


async def repair_entry(db: Database, op: dict) -> bool:
    """Recovery: debited → finish forwards (or refund); not debited → free the seat."""
    if not await wallet.is_applied(db, user_id=op["userId"], op_id=op["_id"]):
        await _release(db, op)
        await operations.discard(db, op["_id"])
        return False
    with contextlib.suppress(Conflict):  # Conflict: refunded, the battle was cancelled first
        await complete_entry(db, op, balance_after=None)
    return True


# --- leave and cancel -------------------------------------------------------------------------


async def leave(db: Database, *, user_id: str, battle_id: str) -> dict:
    battle = await get(db, battle_id)
    if battle["createdBy"] == user_id:
        return await cancel(db, battle_id=battle_id, by=user_id, reason="creator_left")
    _check_leavable(battle)
    seat = next((s for s in battle["slots"] if s is not None and s["userId"] == user_id), None)
    if seat is None:
        raise Conflict("You are not in this battle", code="battle_not_joined")
    if not seat["paid"]:
        raise Conflict("Your entry is still being paid; try again", code="battle_entry_in_progress")
    op_id = f"leave:{seat['entryOp']}"
    try:
        op = await operations.begin(db, op_id, kind=LEAVE, user_id=user_id, battleId=battle_id,
                                    slot=seat["slot"], entryOp=seat["entryOp"], amount=battle["entryCost"])
    except DuplicateKeyError:
        # An earlier leave of this seat died before its seat change (the seat is
        # still ours, paid): finish it, as cancel does, rather than refuse.
        pending = await operations.get(db, op_id)
        if pending is None or pending["state"] != operations.PENDING:
            raise Conflict("You are not in this battle", code="battle_not_joined") from None
        op = pending
    left = await db.battles.find_one_and_update(
        {"_id": battle_id, "status": WAITING, f"slots.{seat['slot']}.entryOp": seat["entryOp"],
         f"slots.{seat['slot']}.paid": True},
        {"$set": {f"slots.{seat['slot']}": None, "updatedAt": now()}, "$inc": {"seated": -1, "paid": -1, "rev": 1}},
        return_document=ReturnDocument.AFTER,
    )
    if left is None:
        # The op may be shared with a concurrent retry of this leave: settle it
        # as recovery would (seat gone → the refund, once; seat still held → discard).
        if await repair_leave(db, op):
            battle = await get(db, battle_id)
            _check_leavable(battle)  # cancelled meanwhile: refunded, but say so
            return battle  # a concurrent retry of this leave freed the seat
        _check_leavable(await get(db, battle_id))
        raise Conflict("You are not in this battle", code="battle_not_joined")
    await complete_leave(db, op)
    return left


def _check_leavable(battle: dict) -> None:
    if battle["status"] in (RUNNING, FINISHED):
        raise Conflict("The battle has started", code="battle_started")
    if battle["status"] != WAITING:
        raise Conflict("The battle is not waiting for players", code="battle_not_waiting")


async def complete_leave(db: Database, op: dict) -> None:
    await wallet.credit_once(db, user_id=op["userId"], op_id=refund_id(op["entryOp"]), amount=op["amount"],
                             reason="battle_refund", ref_id=op["battleId"])
    await operations.finish(db, op)


async def repair_leave(db: Database, op: dict) -> bool:
    """The seat still holds the entry in a live battle → the leave never
    happened: discard; else refund forwards."""
    battle = await db.battles.find_one({"_id": op["battleId"]})
    seat = battle["slots"][op["slot"]] if battle is not None else None
    if battle is not None and battle["status"] != CANCELLED and seat is not None and seat["entryOp"] == op["entryOp"]:
        await operations.discard(db, op["_id"])
        return False
    await complete_leave(db, op)
    return True


async def cancel(db: Database, *, battle_id: str, by: str, reason: str) -> dict:
    """Cancel a waiting battle and refund every paid seat. `by`: the creator's id, or "system"."""
    battle = await get(db, battle_id)
    _check_leavable(battle)
    try:
        op = await operations.begin(db, f"cancel:{battle_id}", kind=CANCEL, user_id=battle["createdBy"],
                                    battleId=battle_id, by=by, reason=reason)
    except DuplicateKeyError:  # someone else is cancelling it: help them finish
        op = await operations.get(db, f"cancel:{battle_id}")
        if op is None or op["state"] != operations.PENDING:
            return await get(db, battle_id)
    cancelled = await complete_cancel(db, op)
    if cancelled is None:
        _check_leavable(await get(db, battle_id))
        raise Conflict("The battle is not waiting for players", code="battle_not_waiting")
    return cancelled


async def complete_cancel(db: Database, op: dict) -> dict | None:
    """Compare-and-set waiting → cancelled, then refund each paid seat of the
    battle as the cancel left it. None (and the record discarded) if it had started."""
    battle = await db.battles.find_one_and_update(
        {"_id": op["battleId"], "status": WAITING},
        {"$set": {"status": CANCELLED, "cancelledAt": now(), "cancelledBy": op["by"], "cancelReason": op["reason"],
                  "updatedAt": now()}, "$inc": {"rev": 1}, "$unset": {"openSlot": ""}},
        return_document=ReturnDocument.AFTER,
    )
    if battle is None:
        battle = await db.battles.find_one({"_id": op["battleId"]})
        if battle is None or battle["status"] != CANCELLED:
            await operations.discard(db, op["_id"])
            return None
    for seat in battle["slots"]:
        if seat is not None and not seat["bot"] and seat["paid"]:
            await wallet.credit_once(db, user_id=seat["userId"], op_id=refund_id(seat["entryOp"]),
                                     amount=battle["entryCost"], reason="battle_refund", ref_id=battle["_id"])
    await operations.finish(db, op)
    return battle


async def repair_cancel(db: Database, op: dict) -> bool:
    return await complete_cancel(db, op) is not None


def refunded_users(battle: dict) -> list[str]:
    return [s["userId"] for s in battle["slots"] if s is not None and not s["bot"]]


# --- bots and the start -----------------------------------------------------------------------


async def add_bots(db: Database, *, user_id: str, battle_id: str) -> dict:
    battle = await get(db, battle_id)
    if battle["createdBy"] != user_id:
        raise Forbidden("Only the battle's creator can call bots", code="battle_not_creator")
    _check_leavable(battle)
    empty = [i for i, s in enumerate(battle["slots"]) if s is None]
    if not empty:
        raise Conflict("The battle is full", code="battle_full")
    filled = await db.battles.find_one_and_update(
        {"_id": battle_id, "status": WAITING, "rev": battle["rev"]},
        {"$set": {**{f"slots.{i}": _bot(i, battle["teams"][i]) for i in empty}, "updatedAt": now()},
         "$inc": {"seated": len(empty), "paid": len(empty), "rev": 1}},
        return_document=ReturnDocument.AFTER,
    )
    if filled is None:
        raise Conflict("The battle changed meanwhile; try again", code="battle_changed")
    return filled


async def try_start(db: Database, battle_id: str) -> dict | None:
    """waiting → running once every seat is paid, with every round drawn and
    stored in that same write. The started battle, or None (not ready, or
    someone else started it)."""
    battle = await db.battles.find_one({"_id": battle_id})
    if battle is None or battle["status"] != WAITING or battle["paid"] != battle["size"]:
        return None
    return await db.battles.find_one_and_update(
        {"_id": battle_id, "status": WAITING, "rev": battle["rev"], "paid": battle["size"]},
        {"$set": {"status": RUNNING, "startedAt": now(), "revealedAt": now(), "updatedAt": now(),
                  **draws.outcome(battle)}, "$unset": {"openSlot": ""}},
        return_document=ReturnDocument.AFTER,
    )


async def replay_body(db: Database, op: dict) -> tuple[int, dict] | None:
    """The answer (201, as the create's) stored for an Idempotency-Key whose
    create request died after its entry finished; None when the entry ended
    refunded (its battle deleted or cancelled first): no battle was created for
    the key, so it is forgotten and a retry creates one afresh."""
    battle = await db.battles.find_one({"_id": op["battleId"]})
    if battle is None or not _holds(battle, op):
        return None
    return 201, {"success": True, "battle": public_battle(battle)}
