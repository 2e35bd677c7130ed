"""Recovery: finish or undo money operations interrupted between steps.

Runs at start-up and then every RECOVERY_INTERVAL_SECONDS, on operations older
than RECOVERY_GRACE_SECONDS (younger ones may still be running in some
process). Each kind of operation says, in KINDS, how it is repaired from
the steps that took effect:
  - open, adjust: debited (marker on the user or ledger entry) → finish it
          forwards; not debited → discard it (no money moved).
  - sell, payment, reverse: the decision is recorded, so always finish
          forwards (the credit is guarded by the marker and ledger `_id`);
          a sale whose item was staked first is discarded instead.
  - upgrade: nonce moved (marker or ledger entry) → finish forwards; else
          release the staked items and discard (cyberhub/games/upgrades/operation.py).
A new kind of money operation adds its entry to KINDS.
Then idempotency keys left "running" are settled from their operation, and
missing case-version archive copies are re-written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from cyberhub.accounts import suspension
from cyberhub.admin import adjustments
from cyberhub.catalogue import cases as catalogue
from cyberhub.games.battles import seats as battles
from cyberhub.games.upgrades import operation as upgrades
from cyberhub.money import inventory, openings, operations, payments, reversals, wallet
from cyberhub.platform.ids import now
from cyberhub.store.db import Database, PyMongoError

if TYPE_CHECKING:
    from handlers.services import Services

log = logging.getLogger("cyberhub.recovery")


@dataclass
class Report:
    completed: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    keys_settled: int = 0
    archives_repaired: int = 0

    @property
    def changed_anything(self) -> bool:
        return bool(self.completed or self.discarded or self.failed or self.keys_settled or self.archives_repaired)


async def recover(db: Database, *, grace_seconds: float = 0.0) -> Report:
    report = Report()
    cutoff = now() - timedelta(seconds=grace_seconds)
    for op in await operations.pending_before(db, cutoff):
        try:
            await _repair(db, op, report)
        except PyMongoError:
            raise  # the database is away: the whole pass waits for the next one
        except Exception:  # one broken record must not block the others
            report.failed.append(op["_id"])
            log.exception("Recovery could not repair operation %s (%s); left pending", op["_id"], op.get("kind"))
    report.keys_settled = await _settle_keys(db, cutoff)
    report.archives_repaired = await catalogue.repair_archive(db)
    return report


Replay = tuple[int, dict]  # the (status, body) stored for an Idempotency-Key


@dataclass(frozen=True)
class Kind:
    """How recovery treats one kind of operation record.

    `repair(db, op)` finishes the operation forwards and returns True, or
    discards it (no money moved) and returns False; every step it takes must
    be idempotent and guarded, since several passes (in several processes)
    may repair the same operation at once. `replay_body(db, op)` rebuilds the
    answer (status, body) stored for an Idempotency-Key whose request died
    after the operation finished, or returns None when there is no answer to
    give (the key is then forgotten, so a retry runs afresh); a kind without
    replay_body is never behind such a key."""

    repair: Callable[[Database, dict], Awaitable[bool]]
    replay_body: Callable[[Database, dict], Awaitable[Replay | None]] | None = None


def _ok(body_of: Callable[[Database, dict], Awaitable[dict]]) -> Callable[[Database, dict], Awaitable[Replay]]:
    """A replay answered 200, for kinds whose body alone is rebuilt."""
    async def replay(db: Database, op: dict) -> Replay:
        return 200, await body_of(db, op)
    return replay


async def _repair_opening(db: Database, op: dict) -> bool:
    if not await wallet.is_applied(db, user_id=op["userId"], op_id=op["_id"]):
        await operations.discard(db, op["_id"])
        return False
    # Read the plan again now that the debit is known to have happened: a live
    # request re-plans (new nonce, new draw) before each debit attempt, so only
    # a copy read after the debit is sure to hold the plan that was charged.
    fresh = await operations.get(db, op["_id"])
    if fresh is not None and fresh["state"] == operations.PENDING:  # else finished by its own request meanwhile
        await openings.complete(db, fresh, balance_after=None)
    return True


async def _repair_adjustment(db: Database, op: dict) -> bool:
    # Like an opening: the live request gives up before the grace, so "not
    # applied" here means it never will be.
    if not await wallet.is_applied(db, user_id=op["userId"], op_id=op["_id"]):
        await operations.discard(db, op["_id"])
        return False
    await adjustments.complete(db, op, balance_after=None)
    return True


async def _repair_sale(db: Database, op: dict) -> bool:
    # Forwards, but complete_sale discards (None) a sale whose item left the
    # inventory another way first (staked in an upgrade): report what happened.
    return await inventory.complete_sale(db, op) is not None


async def _forwards(finish: Callable[[Database, dict], Awaitable[object]], db: Database, op: dict) -> bool:
    """For kinds whose decision is recorded before any money moves: always forwards."""
    await finish(db, op)
    return True


async def _opening_body(db: Database, op: dict) -> dict:
    return openings.response_body(await openings.result_of(db, op))


KINDS: dict[str, Kind] = {
    openings.KIND: Kind(_repair_opening, _ok(_opening_body)),
    adjustments.KIND: Kind(_repair_adjustment, _ok(adjustments.replay_body)),
    inventory.KIND: Kind(_repair_sale),
    payments.KIND: Kind(partial(_forwards, payments.complete_payment)),
    reversals.KIND: Kind(partial(_forwards, reversals.complete)),
    upgrades.KIND: Kind(upgrades.repair, _ok(upgrades.replay_body)),
    # Case battles: an entry like an opening (debited → forwards, else its seat is freed),
    # a leave or cancel forwards once its seat change / status change happened.
    battles.ENTRY: Kind(battles.repair_entry, battles.replay_body),
    battles.LEAVE: Kind(battles.repair_leave),
    battles.CANCEL: Kind(battles.repair_cancel),
}


async def _repair(db: Database, op: dict, report: Report) -> None:
    kind = KINDS.get(op["kind"])
    if kind is None:
        raise ValueError(f"unknown operation kind {op['kind']!r}")
    if await kind.repair(db, op):
        report.completed.append(op["_id"])
        report.users.add(op["userId"])
    else:
        report.discarded.append(op["_id"])


async def _settle_keys(db: Database, cutoff: object) -> int:
    settled = 0
    for key in await db.idempotency_keys.find({"state": "running", "createdAt": {"$lte": cutoff}}).to_list(None):
        try:
            settled += await _settle_key(db, key)
        except PyMongoError:
            raise  # the database is away: the whole pass waits for the next one
        except Exception:  # one broken key must not stop the others, or the archive repair after them
            log.exception("Recovery could not settle idempotency key of operation %s; left running", key.get("opId"))
    return settled


async def _settle_key(db: Database, key: dict) -> int:
    """1 when the key was settled (answer stored, or forgotten), else 0."""
    op = await operations.get(db, key["opId"])
    if op is not None:
        replay = KINDS[op["kind"]].replay_body if op["kind"] in KINDS else None
        if op["state"] != operations.DONE or replay is None:
            return 0  # still pending: settled on a later pass
        answer = await replay(db, op)
        if answer is not None:
            status, body = answer
            # Only if still running: the request itself may have stored its answer meanwhile.
            await db.idempotency_keys.update_one(
                {"_id": key["_id"], "state": "running"},
                {"$set": {"state": "done", "response": {"status": status, "body": body}}},
            )
            return 1
    # No operation, or one with no answer to give: forget the key, a retry runs afresh.
    await db.idempotency_keys.delete_one({"_id": key["_id"], "state": "running", "opId": key["opId"]})
    return 1


async def recover_and_notify(services: Services, *, grace_seconds: float) -> Report:
    report = await recover(services.db, grace_seconds=grace_seconds)
    if report.changed_anything:
        log.warning(
            "Recovery: %d operation(s) completed, %d discarded, %d failed, %d idempotency key(s) settled, "
            "%d archive(s) repaired", len(report.completed), len(report.discarded), len(report.failed),
            report.keys_settled, report.archives_repaired,
        )
    metrics = services.metrics.recovery_actions
    for action, count in (("completed", len(report.completed)), ("discarded", len(report.discarded)),
                          ("failed", len(report.failed)),
                          ("key_settled", report.keys_settled), ("archive_repaired", report.archives_repaired)):
        if count:
            metrics.labels(action).inc(count)
    for user_id in report.users:
        await services.notifier.balance_updated(user_id, await wallet.balance_of(services.db, user_id))
        await services.notifier.inventory_updated(user_id)
        # A reversal finished here may have suspended the player (shortfall):
        # their sockets go, as when the live request suspends them.
        user = await services.db.users.find_one({"_id": user_id}, projection={"suspended": 1})
        if user is not None and user.get("suspended"):
            await suspension.disconnect_sockets(services.sio, user_id)
    return report
