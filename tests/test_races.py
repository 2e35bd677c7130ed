"""Concurrent requests against one balance, one item, one payment, one key.

The store proxy yields to the event loop before every database call, so these
requests interleave between every read and write, as on a real server."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case, funded_user

ONE_ITEM_CASE = {"name": "Flat", "price": 100,
                 "items": [{"name": "Token", "rarity": "common", "price": 40, "weight": 1},
                           {"name": "Gem", "rarity": "rare", "price": 250, "weight": 1}]}


async def test_200_concurrent_opens_against_balance_for_50(live):
    case = await create_case(live, ONE_ITEM_CASE)
    token, user_id = await funded_user(live, "racer", 50 * 100)
    replies = await asyncio.gather(*[
        live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token) for _ in range(200)])
    statuses = Counter(r.status for r in replies)
    assert statuses == {200: 50, 409: 150}
    assert all(r.body["code"] == "insufficient_balance" for r in replies if r.status == 409)
    assert await live.db.inventory.count_documents({"userId": user_id}) == 50
    user = await live.db.users.find_one({"_id": user_id})
    assert user["balance"] == 0 and user["casesOpened"] == 50 and user["fair"]["nonce"] == 50
    nonces = sorted(r.body["fair"]["nonce"] for r in replies if r.status == 200)
    assert nonces == list(range(50)), "every nonce used exactly once"
    await assert_money_invariants(live.db)


async def test_50_concurrent_claims_of_one_item_credit_once(live):
    case = await create_case(live, ONE_ITEM_CASE)
    token, user_id = await funded_user(live, "claimer", 100)
    item = (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"]
    replies = await asyncio.gather(*[
        live.api.post("/api/inventory/claim", {"itemId": item["id"]}, token=token) for _ in range(50)])
    assert Counter(r.status for r in replies) == {200: 1, 409: 49}
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == item["price"]
    assert await live.db.ledger.count_documents({"reason": "item_sale"}) == 1
    await assert_money_invariants(live.db)


async def test_100_concurrent_deliveries_of_one_payment_credit_once(live):
    _, user_id = await funded_user(live, "payee", 0)
    payload = {"paymentId": "pay_race_1", "userId": user_id, "amount": 2500, "currency": "USD",
               "status": "succeeded"}
    raw, headers = live.api.webhook(payload)
    replies = await asyncio.gather(*[
        live.api.post("/api/payment/callback", raw=raw, headers=headers) for _ in range(100)])
    assert all(r.status == 200 for r in replies)
    assert Counter(r.body["duplicate"] for r in replies) == {False: 1, True: 99}
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 2500
    assert await live.db.payment_deliveries.count_documents({"paymentId": "pay_race_1"}) == 100
    await assert_money_invariants(live.db)


async def test_20_concurrent_retries_with_one_idempotency_key_debit_once(live):
    case = await create_case(live, ONE_ITEM_CASE)
    token, user_id = await funded_user(live, "retrier", 1000)
    headers = {"Idempotency-Key": "open-7f3a"}
    replies = await asyncio.gather(*[
        live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token, headers=headers) for _ in range(20)])
    assert all(r.status == 200 for r in replies), Counter(r.status for r in replies)
    assert len({r.body["item"]["id"] for r in replies}) == 1, "every retry returns the first result"
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 900
    assert await live.db.inventory.count_documents({"userId": user_id}) == 1
    await assert_money_invariants(live.db)


async def test_opens_racing_a_seed_rotation_never_mix_seed_and_nonce(live):
    case = await create_case(live, ONE_ITEM_CASE)
    token, user_id = await funded_user(live, "rotator", 20 * 100)
    opens = [live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token) for _ in range(20)]
    rotations = [live.api.post("/api/fair/rotate", token=token) for _ in range(3)]
    replies = await asyncio.gather(*opens, *rotations)
    assert all(r.status == 200 for r in replies)
    openings = await live.db.openings.find({"userId": user_id}).to_list(None)
    by_seed = Counter(o["serverSeedHash"] for o in openings)
    for seed_hash, count in by_seed.items():
        nonces = sorted(o["nonce"] for o in openings if o["serverSeedHash"] == seed_hash)
        assert nonces == list(range(count)), "each seed pair's nonces start at 0 with no gap or repeat"
    revealed = [r.body["previous"] for r in replies[20:]]
    for prev in revealed:
        used = sorted(o["nonce"] for o in openings if o["serverSeedHash"] == prev["serverSeedHash"])
        assert prev["nonce"] == len(used), "rotation reports the nonce the seed actually reached"
    await assert_money_invariants(live.db)
