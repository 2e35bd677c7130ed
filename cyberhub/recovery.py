"""Recovery: finish or undo money operations interrupted between steps.

Runs at start-up and then every RECOVERY_INTERVAL_SECONDS, on operations older
than RECOVERY_GRACE_SECONDS (younger ones may still be running in some
process). For each pending operation it looks at which steps took effect:
  - open: debited (marker on the user or ledger entry) → finish it forwards;
          not debited → discard it (no money moved).
  - sell, payment: the decision is recorded, so always finish forwards
          (the credit is guarded by the marker and ledger `_id`).
Then idempotency keys left "running" are settled from their operation, and
missing case-version archive copies are re-written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from cyberhub import catalogue, inventory, openings, operations, payments, wallet
from cyberhub.db import Database
from cyberhub.ids import now
from cyberhub.models import OpenCaseResponse

if TYPE_CHECKING:
    from cyberhub.services import Services

log = logging.getLogger("cyberhub.recovery")


@dataclass
class Report:
    completed: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    keys_settled: int = 0
    archives_repaired: int = 0

    @property
    def changed_anything(self) -> bool:
        return bool(self.completed or self.discarded or self.keys_settled or self.archives_repaired)


async def recover(db: Database, *, grace_seconds: float = 0.0) -> Report:
    report = Report()
    cutoff = now() - timedelta(seconds=grace_seconds)
    for op in await operations.pending_before(db, cutoff):
        user_id = op["userId"]
        if op["kind"] == openings.KIND:
            if await wallet.is_applied(db, user_id=user_id, op_id=op["_id"]):
                await openings.complete(db, op, balance_after=None)
                report.completed.append(op["_id"])
            else:
                await operations.discard(db, op["_id"])
                report.discarded.append(op["_id"])
                continue
        elif op["kind"] == inventory.KIND:
            await inventory.complete_sale(db, op)
            report.completed.append(op["_id"])
        elif op["kind"] == payments.KIND:
            await payments.complete_payment(db, op)
            report.completed.append(op["_id"])
        else:
            log.error("Unknown operation kind %r (%s) left alone", op["kind"], op["_id"])
            continue
        report.users.add(user_id)
    report.keys_settled = await _settle_keys(db, cutoff)
    report.archives_repaired = await catalogue.repair_archive(db)
    return report


async def _settle_keys(db: Database, cutoff: object) -> int:
    settled = 0
    for key in await db.idempotency_keys.find({"state": "running", "createdAt": {"$lte": cutoff}}).to_list(None):
        op = await operations.get(db, key["opId"])
        if op is not None and op["state"] == operations.DONE:
            result = await openings.complete(db, op, balance_after=None)  # idempotent: rebuilds the result
            body = OpenCaseResponse(item=inventory.public_item(result.item), balance=result.balance,
                                    fair=result.fair).model_dump(mode="json", by_alias=True)
            await db.idempotency_keys.update_one(
                {"_id": key["_id"]}, {"$set": {"state": "done", "response": {"status": 200, "body": body}}}
            )
        elif op is None:
            await db.idempotency_keys.delete_one({"_id": key["_id"], "state": "running"})
        else:
            continue  # still pending: settled on a later pass
        settled += 1
    return settled


async def recover_and_notify(services: Services, *, grace_seconds: float) -> Report:
    report = await recover(services.db, grace_seconds=grace_seconds)
    if report.changed_anything:
        log.warning(
            "Recovery: %d operation(s) completed, %d discarded, %d idempotency key(s) settled, %d archive(s) repaired",
            len(report.completed), len(report.discarded), report.keys_settled, report.archives_repaired,
        )
    metrics = services.metrics.recovery_actions
    for action, count in (("completed", len(report.completed)), ("discarded", len(report.discarded)),
                          ("key_settled", report.keys_settled), ("archive_repaired", report.archives_repaired)):
        if count:
            metrics.labels(action).inc(count)
    for user_id in report.users:
        await services.notifier.balance_updated(user_id, await wallet.balance_of(services.db, user_id))
        await services.notifier.inventory_updated(user_id)
    return report
