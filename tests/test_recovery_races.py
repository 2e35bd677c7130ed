"""Recovery running at the same time as other recovery passes (several
processes restart together) and as live requests. Recovery here runs with
grace 0 on purpose — the worst case, a request older than the grace — and
through the store proxy, so every pass interleaves with everything else."""

from __future__ import annotations

import asyncio
from collections import Counter

from cyberhub.server import recovery
from tests.support.chaos import ChaosDatabase
from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case, funded_user

CASE = {"name": "Contested", "price": 100,
        "items": [{"name": "Pebble", "rarity": "common", "price": 30, "weight": 3},
                  {"name": "Star", "rarity": "epic", "price": 400, "weight": 1}]}


def passes(live, count: int) -> list:
    racing = ChaosDatabase(live.db, live.chaos)
    return [recovery.recover(racing, grace_seconds=0) for _ in range(count)]


async def alongside(live, requests: list, *, workers: int = 3, max_passes: int = 2000) -> list:
    """Answers of `requests`, sent while `workers` recovery loops keep passing
    over the store until every request has answered (at most `max_passes` each)."""
    done = asyncio.Event()
    racing = ChaosDatabase(live.db, live.chaos)

    async def keep_recovering() -> None:
        for _ in range(max_passes):
            if done.is_set():
                return
            await recovery.recover(racing, grace_seconds=0)

    async def run_requests() -> list:
        try:
            return await asyncio.gather(*requests)
        finally:
            done.set()

    replies, *_ = await asyncio.gather(run_requests(), *[keep_recovering() for _ in range(workers)])
    return replies


async def pending_after_fault(live, act, write_index: int) -> None:
    """Run `act` with the write #write_index failing, leaving a pending operation."""
    live.chaos.arm(write_index)
    assert (await act()).status == 503
    live.chaos.disarm()


async def test_concurrent_recovery_passes_credit_each_sale_and_payment_once(live):
    case = await create_case(live, CASE)
    users = []
    for n in range(12):
        token, user_id = await funded_user(live, f"crowd{n}", 100)
        item = (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"]
        users.append((token, user_id, item))
    for n, (token, user_id, item) in enumerate(users):
        # Leave a sale and a payment pending right after their operation record.
        await pending_after_fault(live, lambda t=token, i=item: live.api.post(
            "/api/inventory/claim", {"itemId": i["id"]}, token=t), 2)
        await pending_after_fault(live, lambda u=user_id, k=n: live.api.pay(u, 500, payment_id=f"pay_crowd_{k}"), 3)
    assert await live.db.operations.count_documents({"state": "pending"}) == 24
    await asyncio.gather(*passes(live, 4))
    balances = await assert_money_invariants(live.db)
    for _, user_id, item in users:
        assert balances[user_id] == item["price"] + 500


async def test_recovery_racing_live_opens_never_charges_without_an_item(live):
    case = await create_case(live, CASE)
    token, user_id = await funded_user(live, "contended", 1000)
    opens = [live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token) for _ in range(12)]
    replies = await alongside(live, opens)
    statuses = Counter(r.status for r in replies)
    assert set(statuses) <= {200, 409, 503}, statuses
    assert all(r.body["code"] == "operation_timeout" for r in replies if r.status == 503)
    await recovery.recover(live.db, grace_seconds=0)
    balances = await assert_money_invariants(live.db)
    items = await live.db.inventory.count_documents({"userId": user_id})
    assert balances[user_id] == 1000 - 100 * items
    assert items >= statuses[200]
    opened = await live.db.openings.find({"userId": user_id}).to_list(None)
    assert sorted(o["nonce"] for o in opened) == list(range(len(opened))), "no nonce skipped or reused"


async def test_recovery_racing_idempotent_opens_never_opens_a_key_twice(live):
    case = await create_case(live, CASE)
    token, user_id = await funded_user(live, "keyholder", 1000)

    def open_with(key: str):
        return live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token,
                             headers={"Idempotency-Key": key})

    keys = [f"key-{n}" for n in range(8)]
    first = await alongside(live, [open_with(k) for k in keys])
    await recovery.recover(live.db, grace_seconds=0)
    retries = [await open_with(k) for k in keys]
    for reply, retry in zip(first, retries, strict=True):
        if reply.status == 200:
            assert retry.status == 200 and retry.body == reply.body
    assert all(r.status == 200 for r in retries)
    await assert_money_invariants(live.db)
    assert await live.db.inventory.count_documents({"userId": user_id}) == len(keys)
