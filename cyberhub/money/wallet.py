"""The wallet: the only code that changes a balance.

A balance change is one atomic conditional update of the user document that
also records the operation id in `appliedOps`; the filter refuses it when the
balance would go below zero or the operation was already applied. The marker
is never removed (the list keeps the last APPLIED_MEMORY ids), so however many
actors — a live request, recovery passes in several processes — try to apply
the same operation at once, exactly one succeeds. Every change gets a ledger
entry whose `_id` is the operation id, so writing it twice is harmless.
Recovery that undoes an operation first aborts it (`abort`): its id goes in
`abortedOps`, which `move` also refuses, so a late move cannot land after.
Invariant: balance == Σ ledger deltas once no operation is pending.
"""

from __future__ import annotations

from cyberhub.platform.ids import now
from cyberhub.store.db import Database, ReturnDocument, insert_once

USER_FIELDS = {"balance": 1, "fair": 1, "username": 1}
# Far more than the operations one user can have in flight at once; an id
# leaves the list only long after its ledger entry was written.
APPLIED_MEMORY = 500


async def move(
    db: Database,
    *,
    user_id: str,
    op_id: str,
    delta: int,
    guard: dict | None = None,
    also_inc: dict | None = None,
    also_set: dict | None = None,
) -> dict | None:
    """Apply `delta` once for `op_id`. Returns the user after the change, or
    None when refused (funds, already applied, or `guard` no longer holds).
    `also_set` is written in the same atomic update (e.g. the amount a
    variable move decided on, for whoever finds it applied later)."""
    # Refused as well once recovery aborted the operation (see `abort`).
    flt: dict = {"_id": user_id, "appliedOps": {"$ne": op_id}, "abortedOps": {"$ne": op_id}}
    if delta < 0:
        flt["balance"] = {"$gte": -delta}
    flt.update(guard or {})
    return await db.users.find_one_and_update(
        flt,
        {"$inc": {"balance": delta, **(also_inc or {})},
         "$push": {"appliedOps": {"$each": [op_id], "$slice": -APPLIED_MEMORY}},
         **({"$set": also_set} if also_set else {})},
        projection=USER_FIELDS,
        return_document=ReturnDocument.AFTER,
    )


async def record(
    db: Database, *, op_id: str, user_id: str, delta: int, reason: str, ref_id: str, balance_after: int | None,
    extra: dict | None = None,
) -> None:
    """The ledger entry of an applied move (idempotent). `balance_after` is None
    when recovery completes a move whose resulting balance was not captured.
    `extra`: more fields for the entry (e.g. an adjustment's admin and text)."""
    entry = {**(extra or {}), "_id": op_id, "userId": user_id, "delta": delta, "reason": reason, "refId": ref_id,
             "balanceAfter": balance_after, "createdAt": now()}
    await insert_once(db.ledger, entry)


async def is_applied(db: Database, *, user_id: str, op_id: str) -> bool:
    """Did the move of `op_id` happen? The marker is checked first: it is written
    by the move itself and never removed, so it cannot vanish between checks."""
    if await db.users.find_one({"_id": user_id, "appliedOps": op_id}, projection={"_id": 1}) is not None:
        return True
    return await db.ledger.find_one({"_id": op_id}, projection={"_id": 1}) is not None


async def abort(db: Database, *, user_id: str, op_id: str) -> bool:
    """Make sure the move of `op_id` never happens, unless it already did:
    one atomic update, only while `appliedOps` lacks the id, puts it in
    `abortedOps` (kept as long), and `move` refuses an id found there.
    True: the move did not and now cannot happen (aborted now or before), so
    undoing is safe even while a stalled live request's move is in flight;
    False: it happened. Why: `is_applied`'s "no" can change a moment later."""
    if await db.ledger.find_one({"_id": op_id}, projection={"_id": 1}) is not None:
        return False  # applied long ago: its marker may have left the list
    marked = await db.users.update_one(
        {"_id": user_id, "appliedOps": {"$ne": op_id}, "abortedOps": {"$ne": op_id}},
        {"$push": {"abortedOps": {"$each": [op_id], "$slice": -APPLIED_MEMORY}}})
    if marked.matched_count:
        return True
    return not await is_applied(db, user_id=user_id, op_id=op_id)


async def is_aborted(db: Database, *, user_id: str, op_id: str) -> bool:
    return await db.users.find_one({"_id": user_id, "abortedOps": op_id}, projection={"_id": 1}) is not None


async def credit_once(db: Database, *, user_id: str, op_id: str, amount: int, reason: str, ref_id: str) -> None:
    """Credit `amount` exactly once for `op_id`, however often and however
    concurrently this is run."""
    after = await move(db, user_id=user_id, op_id=op_id, delta=amount)
    if after is None and not await is_applied(db, user_id=user_id, op_id=op_id):
        raise LookupError(f"cannot credit operation {op_id}: user {user_id} not found")
    await record(db, op_id=op_id, user_id=user_id, delta=amount, reason=reason, ref_id=ref_id,
                 balance_after=after["balance"] if after else None)


async def balance_after(db: Database, op: dict) -> int:
    """The balance right after `op`'s move when its ledger entry recorded it,
    else (a move completed by recovery) the current balance."""
    entry = await db.ledger.find_one({"_id": op["_id"]}, projection={"balanceAfter": 1})
    if entry is not None and entry.get("balanceAfter") is not None:
        return entry["balanceAfter"]
    return await balance_of(db, op["userId"])


async def balance_of(db: Database, user_id: str) -> int:
    user = await db.users.find_one({"_id": user_id}, projection={"balance": 1})
    return user["balance"] if user else 0
