"""Crediting a payment exactly once: its operation id is "pay:<paymentId>".

The webhook (money.webhook) checks the delivery and calls `credit` for
`status == "succeeded"`; money.reversals takes a credit back.
"""

from __future__ import annotations

import logging

from cyberhub.money import operations, wallet
from cyberhub.platform.errors import Conflict
from cyberhub.store.db import Database, DuplicateKeyError

log = logging.getLogger("cyberhub.payments")

KIND = "payment"
# What `credit` did:
CREDITED = "credited"  # this call moved the money
COMPLETED_LATE = "completed_late"  # an earlier delivery died half-way; this call finished its credit
DUPLICATE = "duplicate"  # credited before; nothing moved
VOIDED = "voided"  # refunded before it was ever credited; it never will be


async def credit(db: Database, *, payment_id: str, user_id: str, amount: int, currency: str) -> str:
    op_id = f"pay:{payment_id}"
    try:
        op = await operations.begin(db, op_id, kind=KIND, user_id=user_id, paymentId=payment_id,
                                    amount=amount, currency=currency)
    except DuplicateKeyError:
        first = await operations.get(db, op_id) or {}
        if first.get("userId") != user_id or first.get("amount") != amount:
            log.warning("Payment %s repeated with a different user or amount; not credited", payment_id)
            raise Conflict("paymentId was already used for another user or amount",
                           code="payment_conflict") from None
        if first.get("voided"):
            return VOIDED
        if first.get("state") == operations.PENDING:
            # The first delivery died half-way: finish it now rather than leave it to recovery.
            await complete_payment(db, first)
            return COMPLETED_LATE
        return DUPLICATE
    await complete_payment(db, op)
    return CREDITED


async def complete_payment(db: Database, op: dict) -> None:
    await wallet.credit_once(db, user_id=op["userId"], op_id=op["_id"], amount=op["amount"],
                             reason="payment", ref_id=op["paymentId"])
    await operations.finish(db, op)
