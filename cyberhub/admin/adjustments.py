"""Admin wallet adjustments: a correction of a balance, through the ledger.

Same pattern as every money move (docs/MONEY.md): (1) the operation record
(kind "adjust", the admin, the amount and the admin's text); (2) one guarded
`wallet.move` (a debit only while the balance covers it); (3) the ledger entry
(reason `admin_adjustment`, with `adminId` and `text`) and the audit entry,
both keyed by the operation id; (4) close. A refused debit discards the
record: 409 insufficient_balance, nothing changed. Recovery finishes an
adjustment whose move happened and discards one whose move did not (the live
request gives up before RECOVERY_GRACE_SECONDS, like an opening).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cyberhub.admin import audit
from cyberhub.money import operations, wallet
from cyberhub.platform.errors import Conflict, NotFound, ServiceUnavailable
from cyberhub.store.db import Database

KIND = "adjust"
REASON = "admin_adjustment"


@dataclass(frozen=True)
class AdjustResult:
    adjustment_id: str
    balance: int


async def adjust(db: Database, *, admin_id: str, user_id: str, amount: int, text: str, op_id: str,
                 deadline_seconds: float) -> AdjustResult:
    clock = time.monotonic  # not loop.time(): uvloop's has millisecond resolution
    started = clock()
    if await db.users.find_one({"_id": user_id}, projection={"_id": 1}) is None:
        raise NotFound("User not found", code="user_not_found")
    op = await operations.begin(db, op_id, kind=KIND, user_id=user_id, adminId=admin_id, amount=amount, text=text)
    if clock() - started > deadline_seconds:
        await operations.discard(db, op_id)
        raise ServiceUnavailable("The adjustment took too long and was cancelled; nothing moved",
                                 code="operation_timeout")
    after = await wallet.move(db, user_id=user_id, op_id=op_id, delta=amount)
    if after is None:
        await operations.discard(db, op_id)
        raise Conflict("Insufficient balance", code="insufficient_balance")
    await complete(db, op, balance_after=after["balance"])
    return AdjustResult(adjustment_id=op_id, balance=after["balance"])


async def complete(db: Database, op: dict, *, balance_after: int | None) -> None:
    """Steps 3–4 for an adjustment whose move happened (idempotent)."""
    await wallet.record(db, op_id=op["_id"], user_id=op["userId"], delta=op["amount"], reason=REASON,
                        ref_id=op["adminId"], balance_after=balance_after,
                        extra={"adminId": op["adminId"], "text": op["text"]})
    await audit.append(db, admin_id=op["adminId"], action="user.adjust", target=op["userId"],
                       details={"adjustmentId": op["_id"], "amount": op["amount"], "reason": op["text"]},
                       entry_id=op["_id"])
    await operations.finish(db, op)


def response_body(adjustment_id: str, balance: int) -> dict:
    """The JSON answer (also stored for Idempotency-Key replays)."""
    return {"success": True, "adjustmentId": adjustment_id, "balance": balance}


async def replay_body(db: Database, op: dict) -> dict:
    """The answer of a finished adjustment, rebuilt by recovery for its key."""
    return response_body(op["_id"], await wallet.balance_after(db, op))
