"""Payment reversals: a credited payment that the provider reports `refunded`
or `charged_back` has its credit taken back, exactly once.

- The operation id is "reverse:<paymentId>", a natural key: a second delivery
  of the refund fails on it before any money moves (outcome `duplicate`).
- Only the whole credit is reversed: a refund whose amount differs from the
  credited payment's is refused (409 refund_amount_mismatch, recorded on the
  delivery) and left to an admin adjustment.
- The debit is min(credited amount, balance): the balance never goes below
  zero. The amount is decided by a compare-and-set loop — read the balance b,
  x = min(amount, b), then one `wallet.move` of −x guarded by `balance == b`
  that also writes x to the user (`reversals.<sha1(opId)>`) — so a live
  request and recovery passes in several processes racing on it move money
  once, and whoever finds the move applied reads the x that was taken for
  the ledger entry. The decision to reverse is recorded, so recovery always
  finishes it forwards.
- A shortfall (amount − x > 0) suspends the player (by "system", the reason
  names the payment and the missing amount) and is recorded on the ledger
  entry and the delivery.
- A refund of a payment that was never credited is `recorded`, and leaves a
  closed "pay:<paymentId>" record behind, so that a `succeeded` delivery of
  that payment arriving later is not credited either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cyberhub.accounts import suspension
from cyberhub.money import operations, payments, wallet
from cyberhub.platform.errors import Conflict, ServiceUnavailable
from cyberhub.platform.ids import now
from cyberhub.store.db import Database, DuplicateKeyError

KIND = "reverse"
REASON = "payment_reversal"
STATUSES = frozenset({"refunded", "charged_back"})
# Compare-and-set tries before giving up for now; each loses only to another
# change of the same player's balance in between its read and its move.
MAX_ATTEMPTS = 50


def reversal_id(payment_id: str) -> str:
    return f"reverse:{payment_id}"


def _amount_field(op_id: str) -> str:
    # paymentIds may hold dots, which a field path cannot: the key is a hash.
    return f"reversals.{hashlib.sha1(op_id.encode()).hexdigest()}"


@dataclass(frozen=True)
class Reversal:
    outcome: str  # reversed | duplicate | recorded
    user_id: str | None = None  # set when money moved (or may have) for this player
    amount: int = 0  # what was debited
    shortfall: int = 0


async def handle(db: Database, *, payment_id: str, user_id: str, amount: int, currency: str, status: str
                 ) -> Reversal:
    pay_id = f"pay:{payment_id}"
    payment = await operations.get(db, pay_id)
    if payment is None:
        try:
            stamp = now()
            await db.operations.insert_one({
                "_id": pay_id, "kind": payments.KIND, "userId": user_id, "paymentId": payment_id, "amount": amount,
                "currency": currency, "state": operations.DONE, "voided": status, "createdAt": stamp,
                "updatedAt": stamp, "doneAt": stamp})
            return Reversal("recorded")
        except DuplicateKeyError:  # the credit began meanwhile: reverse it
            payment = await operations.get(db, pay_id) or {}
    if payment.get("userId") != user_id:
        raise Conflict("paymentId belongs to another user", code="payment_conflict")
    if payment.get("voided"):
        return Reversal("duplicate")
    if payment.get("amount") != amount:
        raise Conflict("Only the whole payment can be reversed: the amount differs from the credited one",
                       code="refund_amount_mismatch")
    if payment.get("state") == operations.PENDING:
        await payments.complete_payment(db, payment)  # the credit died half-way: finish it first
    op_id = reversal_id(payment_id)
    try:
        op = await operations.begin(db, op_id, kind=KIND, user_id=user_id, paymentId=payment_id, amount=amount,
                                    status=status)
    except DuplicateKeyError:
        first = await operations.get(db, op_id)
        if first is not None and first["state"] == operations.PENDING:
            done = await complete(db, first)
            return Reversal("duplicate", user_id=user_id, amount=done.amount, shortfall=done.shortfall)
        return Reversal("duplicate")
    done = await complete(db, op)
    return Reversal("reversed", user_id=user_id, amount=done.amount, shortfall=done.shortfall)


async def complete(db: Database, op: dict) -> Reversal:
    """Debit min(amount, balance) once, ledger entry, suspension on a
    shortfall, close. Idempotent; what recovery re-runs."""
    op_id, user_id, amount = op["_id"], op["userId"], op["amount"]
    field = _amount_field(op_id)
    balance_after: int | None = None
    for _attempt in range(MAX_ATTEMPTS):
        entry = await db.ledger.find_one({"_id": op_id}, projection={"delta": 1})
        if entry is not None:
            taken = -entry["delta"]
            break
        user = await db.users.find_one({"_id": user_id}, projection={"balance": 1, "appliedOps": 1, "reversals": 1})
        if user is None:
            raise LookupError(f"cannot reverse operation {op_id}: user {user_id} not found")
        if op_id in user.get("appliedOps", []):
            taken = user["reversals"][field.split(".", 1)[1]]
            break
        balance = user["balance"]
        taken = min(amount, balance)
        after = await wallet.move(db, user_id=user_id, op_id=op_id, delta=-taken, guard={"balance": balance},
                                  also_set={field: taken})
        if after is not None:
            balance_after = after["balance"]
            break
        # The balance changed (or another actor applied it): read again.
    else:
        # The player's balance kept changing under every attempt. The decision
        # is recorded: recovery (or the provider's retry) finishes it later.
        raise ServiceUnavailable("The reversal could not settle the balance yet; it will be completed",
                                 code="reversal_pending")
    shortfall = amount - taken
    await wallet.record(db, op_id=op_id, user_id=user_id, delta=-taken, reason=REASON, ref_id=op["paymentId"],
                        balance_after=balance_after, extra={"shortfall": shortfall} if shortfall else None)
    if shortfall:
        await suspension.suspend(
            db, user_id=user_id, by="system",
            reason=f"Payment reversal shortfall: payment {op['paymentId']} was {op.get('status', 'reversed')}; "
                   f"{shortfall} of {amount} could not be debited")
    await operations.finish(db, op)
    return Reversal("reversed", user_id=user_id, amount=taken, shortfall=shortfall)
