"""An upgrade stopped at each of its writes — before the write reaches the
store, and after it was applied with the reply lost — then recovery: the
upgrade happened entirely (items staked, nonce moved, record, ledger entry,
won item) or not at all (items owned again, nothing recorded), and a client
retry does not use the items twice. As tests/test_faults.py does for openings."""

from __future__ import annotations

import asyncio

import pytest

from cyberhub.server import recovery
from tests.support.chaos import assert_store_outage_answer, failure_points
from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case
from tests.test_upgrades import FODDER, next_roll, player_with_items, target_case


async def _prepare(live, n: int, state: dict) -> dict:
    if n == 0:
        state["fodder"] = await create_case(live, FODDER)
        state["targets"] = await create_case(live, target_case(250))  # chance 200·0.9/250 = 0.72
    token, user_id, items = await player_with_items(live, f"faulty{n}", 2, state["fodder"])
    # Every run must take the same writes: new seed pairs until the next roll wins.
    while (roll := await next_roll(live, user_id))[0] >= 0.72:
        assert (await live.api.post("/api/fair/rotate", token=token)).status == 200
    target = state["targets"]
    return {"token": token, "user_id": user_id, "items": items, "nonce": roll[1],
            "body": {"itemIds": items, "caseId": target["id"], "targetItemId": target["items"][0]["id"]}}


async def _act(live, ctx: dict, key: bool):
    headers = {"Idempotency-Key": f"up-{ctx['user_id']}"} if key else {}
    return await live.api.post("/api/upgrades", ctx["body"], token=ctx["token"], headers=headers)


async def _check(live, ctx: dict, key: bool) -> None:
    records = await live.db.upgrades.find({"userId": ctx["user_id"]}).to_list(None)
    statuses = [d["status"] for d in await live.db.inventory.find({"_id": {"$in": ctx["items"]}}).to_list(None)]
    nonce = (await live.db.users.find_one({"_id": ctx["user_id"]}))["fair"]["nonce"]
    if records:  # finished forwards by recovery
        assert statuses == ["upgraded", "upgraded"] and nonce == ctx["nonce"] + 1
        assert await live.db.inventory.count_documents({"source": "upgrade", "userId": ctx["user_id"]}) == 1
    else:  # undone: nothing consumed
        assert statuses == ["owned", "owned"] and nonce == ctx["nonce"]
    retry = await _act(live, ctx, key)
    if key or not records:  # the first answer, or a first (and only) run
        assert retry.status == 200, retry
    else:
        assert retry.status == 409 and retry.body["code"] == "item_not_owned", retry
    records = await live.db.upgrades.find({"userId": ctx["user_id"]}).to_list(None)
    assert len(records) == 1
    if retry.status == 200:
        assert retry.body["upgrade"]["id"] == records[0]["_id"]
        assert retry.body["upgrade"]["won"] == records[0]["won"]


@pytest.mark.parametrize("key", [False, True], ids=["plain", "idempotency_key"])
async def test_upgrade_failure_after_every_step_then_recovery(live, key):
    state: dict = {}
    clean = await _prepare(live, 0, state)
    reply, writes = await live.chaos.record(_act(live, clean, key))
    assert reply.status == 200
    assert ("inventory", "update_many") in writes and ("users", "find_one_and_update") in writes, writes

    for point in failure_points(writes):
        ctx = await _prepare(live, point.n, state)
        reply = await live.chaos.cut_off(point, _act(live, ctx, key))
        assert_store_outage_answer(reply, point)
        await recovery.recover(live.db, grace_seconds=0)
        await assert_money_invariants(live.db)
        await _check(live, ctx, key)
        await assert_money_invariants(live.db)


async def test_restart_finishes_an_upgrade_interrupted_after_its_nonce_moved(start_live):
    first = await start_live()
    state: dict = {}
    ctx = await _prepare(first, 0, state)
    first.chaos.arm()
    await _act(first, ctx, False)
    move = next(i for i, w in enumerate(first.chaos.writes, 1) if w == ("users", "find_one_and_update"))
    ctx = await _prepare(first, 1, state)
    first.chaos.arm(move + 1)  # dies right after the point of no return
    assert (await _act(first, ctx, False)).status == 503
    first.chaos.disarm()
    assert await first.db.upgrades.count_documents({"userId": ctx["user_id"]}) == 0

    second = await start_live()  # start-up runs recovery (grace 0 in tests)
    assert await second.db.upgrades.count_documents({"userId": ctx["user_id"]}) == 1
    await assert_money_invariants(second.db)
    items = (await second.api.get("/api/inventory", token=ctx["token"])).body["items"]
    assert {i["status"] for i in items if i["id"] in ctx["items"]} == {"upgraded"}


async def test_recovery_undoing_an_upgrade_refuses_its_late_nonce_move(live):
    """The live request stakes its items, its nonce move stalls past the grace;
    recovery undoes the upgrade (items owned again); then the stalled move
    reaches the store. It must be refused: no won item, no record, the nonce
    unmoved, the player answered 503 — not the items back and the prize too."""
    ctx = await _prepare(live, 0, {})
    live.chaos.hold("users", "find_one_and_update")  # the nonce move, step 3
    request = asyncio.ensure_future(_act(live, ctx, False))
    await live.chaos.holding.wait()
    assert await live.db.inventory.count_documents({"_id": {"$in": ctx["items"]}, "status": "upgraded"}) == 2

    await recovery.recover(live.db, grace_seconds=0)
    assert await live.db.operations.count_documents({"kind": "upgrade", "userId": ctx["user_id"]}) == 0
    live.chaos.resume()
    reply = await request

    assert reply.status == 503 and reply.body["code"] == "operation_timeout", reply
    statuses = [d["status"] for d in await live.db.inventory.find({"_id": {"$in": ctx["items"]}}).to_list(None)]
    assert statuses == ["owned", "owned"]
    assert await live.db.inventory.count_documents({"source": "upgrade", "userId": ctx["user_id"]}) == 0
    assert await live.db.upgrades.count_documents({"userId": ctx["user_id"]}) == 0
    assert (await live.db.users.find_one({"_id": ctx["user_id"]}))["fair"]["nonce"] == ctx["nonce"]
    await assert_money_invariants(live.db)
    # The player can upgrade those items again at once.
    assert (await _act(live, ctx, False)).status == 200
    await assert_money_invariants(live.db)
