"""Payment provider webhook: signature check, audit trail, then the credit
(money.payments) or the reversal (money.reversals) the delivery asks for.

Signature (Stripe style): `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(
secret, "<t>.<raw body>")>`, compared in constant time and refused outside the
tolerance window. Only `status == "succeeded"` credits, and a payment id
credits at most once: its operation id is "pay:<paymentId>". `refunded` and
`charged_back` reverse a credited payment once (money/reversals.py). Every
delivery, refused ones included, is stored in `payment_deliveries` with its
outcome: credited | duplicate | recorded | reversed | refused:<code>
("processing" while it is being handled).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cyberhub.money import payments, reversals
from cyberhub.money.models import PaymentCallback
from cyberhub.platform.errors import AppError, BadRequest, NotFound, Unauthorized
from cyberhub.platform.ids import now, ordered_id
from cyberhub.platform.validation import parse_json
from cyberhub.store.db import Database, is_unavailable_error

if TYPE_CHECKING:
    from settings import Settings

log = logging.getLogger("cyberhub.payments")

SUCCEEDED = "succeeded"
AUDIT_BODY_LIMIT = 64 * 1024
UNSIGNED_BODY_LIMIT = 1024  # a forged delivery is kept for audit, but only its start
TIMESTAMP = re.compile(r"[0-9]{1,12}")


def sign(secret: str, raw_body: bytes, timestamp: int) -> str:
    """The header value the provider sends (also used by tests and tools)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(header: str | None, raw_body: bytes, *, secret: str, now_ts: int, tolerance: int) -> None:
    if not header:
        raise Unauthorized("Missing X-Signature header", code="invalid_signature")
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise Unauthorized("Malformed X-Signature header", code="invalid_signature")
    expected = sign(secret, raw_body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise Unauthorized("Signature does not match", code="invalid_signature")
    if abs(now_ts - timestamp) > tolerance:
        raise Unauthorized("Signature timestamp outside the allowed window", code="signature_expired")


@dataclass(frozen=True)
class DeliveryResult:
    duplicate: bool
    credited_user: str | None = None  # set when this delivery moved money
    credited_amount: int = 0
    reversed_user: str | None = None  # set when this delivery took a credit back
    suspended_user: str | None = None  # set when the reversal fell short and suspended the player
    fields: dict = field(default_factory=dict)  # more to record on the delivery (reversal amounts)


@dataclass(frozen=True)
class PaymentRules:
    secret: str
    tolerance_seconds: int
    currency: str
    max_amount: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PaymentRules:
        return cls(secret=settings.webhook_key, tolerance_seconds=settings.payment_tolerance_seconds,
                   currency=settings.currency, max_amount=settings.payment_max_amount)


async def handle_delivery(
    db: Database,
    *,
    raw_body: bytes,
    signature: str | None,
    rules: PaymentRules,
    remote_ip: str,
    before_storing_forged: Callable[[], Awaitable[None]] | None = None,
) -> DeliveryResult:
    """`before_storing_forged` runs when the signature is bad, before the audit
    record is written; it may refuse the delivery (e.g. a per-IP limit)."""
    delivery_id = ordered_id()  # same-millisecond deliveries list in arrival order
    received = now()
    forged: Unauthorized | None = None
    try:
        verify_signature(signature, raw_body, secret=rules.secret, now_ts=int(received.timestamp()),
                         tolerance=rules.tolerance_seconds)
    except Unauthorized as exc:
        forged = exc
        if before_storing_forged is not None:
            await before_storing_forged()
    kept = raw_body[:UNSIGNED_BODY_LIMIT if forged else AUDIT_BODY_LIMIT]
    await db.payment_deliveries.insert_one({
        "_id": delivery_id, "receivedAt": received, "remoteIp": remote_ip, "signature": (signature or "")[:512],
        "body": kept.decode("utf-8", "replace"), "bodyBytes": len(raw_body), "outcome": "processing",
    })
    outcome, fields = "refused:internal_error", {}
    try:
        if forged:
            raise forged
        body = parse_json(raw_body, PaymentCallback)
        fields = {"paymentId": body.payment_id, "userId": body.user_id, "amount": body.amount,
                  "currency": body.currency, "status": body.status}
        result, outcome = await _apply(db, body, rules)
        fields.update(result.fields)
        return result
    except AppError as exc:
        outcome = f"refused:{exc.code}"
        raise
    except Exception as exc:
        if is_unavailable_error(exc):
            outcome = "refused:database_unavailable"
        raise
    finally:
        await db.payment_deliveries.update_one(
            {"_id": delivery_id}, {"$set": {"outcome": outcome, "doneAt": now(), **fields}}
        )


async def _apply(db: Database, body: PaymentCallback, rules: PaymentRules) -> tuple[DeliveryResult, str]:
    if body.currency != rules.currency:
        raise BadRequest(f"Unsupported currency {body.currency!r}; expected {rules.currency}",
                         code="unsupported_currency")
    if body.amount > rules.max_amount:
        raise BadRequest(f"Amount exceeds the maximum of {rules.max_amount}", code="amount_too_large")
    if await db.users.find_one({"_id": body.user_id}, projection={"_id": 1}) is None:
        raise NotFound("Unknown userId", code="user_not_found")
    if body.status in reversals.STATUSES:
        done = await reversals.handle(db, payment_id=body.payment_id, user_id=body.user_id, amount=body.amount,
                                      currency=body.currency, status=body.status)
        fields = {"reversedAmount": done.amount, "shortfall": done.shortfall} if done.user_id else {}
        return DeliveryResult(duplicate=done.outcome == "duplicate", reversed_user=done.user_id,
                              suspended_user=done.user_id if done.shortfall else None, fields=fields), done.outcome
    if body.status != SUCCEEDED:
        return DeliveryResult(duplicate=False), "recorded"
    outcome = await payments.credit(db, payment_id=body.payment_id, user_id=body.user_id, amount=body.amount,
                                    currency=body.currency)
    if outcome == payments.CREDITED:
        return DeliveryResult(duplicate=False, credited_user=body.user_id, credited_amount=body.amount), "credited"
    if outcome == payments.COMPLETED_LATE:
        return DeliveryResult(duplicate=True, credited_user=body.user_id, credited_amount=body.amount), "duplicate"
    if outcome == payments.VOIDED:
        return DeliveryResult(duplicate=True), "recorded"
    return DeliveryResult(duplicate=True), "duplicate"


# Outcomes as stored before the vocabulary above, as they read now.
_OLD_OUTCOMES = {"duplicate_completed": "duplicate", "error": "refused:internal_error"}


def public_outcome(stored: str) -> str:
    """credited | duplicate | recorded | reversed | refused:<code> (| processing)."""
    if stored in _OLD_OUTCOMES:
        return _OLD_OUTCOMES[stored]
    if stored.startswith("recorded:"):
        return "recorded"
    if stored.startswith("rejected:"):
        return "refused:" + stored.split(":", 1)[1]
    return stored
