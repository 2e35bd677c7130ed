"""Failure half-way: every money operation is stopped at each of its writes —
before the write reaches the store, and after it was applied but its reply was
lost — then recovery runs, and the invariants must hold with nothing applied
twice or lost. A retry of the same request must not move money again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from cyberhub.server import recovery
from tests.support.chaos import assert_store_outage_answer, failure_points
from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case, funded_user

CASE = {"name": "Faulty", "price": 300,
        "items": [{"name": "Shard", "rarity": "common", "price": 120, "weight": 3},
                  {"name": "Crown", "rarity": "epic", "price": 900, "weight": 1}]}


@dataclass
class Scenario:
    """One money operation: `prepare` makes a fresh user/state, `act` sends the
    request, `check` asserts the outcome after recovery and a client retry."""

    prepare: Callable[[object, int], Awaitable[dict]]
    act: Callable[[object, dict], Awaitable[object]]
    check: Callable[[object, dict], Awaitable[None]]


async def _prepare_open(live, n):
    case = await create_case(live, CASE) if n == 0 else None
    token, user_id = await funded_user(live, f"opener{n}", 1000)
    return {"token": token, "user_id": user_id, "case": case}


def _open_scenario(key: bool) -> Scenario:
    state: dict = {}

    async def prepare(live, n):
        ctx = await _prepare_open(live, n)
        state.setdefault("case", ctx["case"])
        ctx["case"] = state["case"]
        ctx["headers"] = {"Idempotency-Key": f"k-{n}"} if key else {}
        return ctx

    async def act(live, ctx):
        return await live.api.post("/api/cases/open", {"caseId": ctx["case"]["id"]}, token=ctx["token"],
                                   headers=ctx["headers"])

    async def check(live, ctx):
        items = await live.db.inventory.count_documents({"userId": ctx["user_id"]})
        user = await live.db.users.find_one({"_id": ctx["user_id"]})
        assert user["balance"] == 1000 - 300 * items and items in (0, 1)
        if key:  # the retry returns the first result, or runs once if the first never debited
            retry = await act(live, ctx)
            assert retry.status == 200, retry
            assert await live.db.inventory.count_documents({"userId": ctx["user_id"]}) == 1
            assert (await live.db.users.find_one({"_id": ctx["user_id"]}))["balance"] == 700
            stored = await live.db.inventory.find_one({"userId": ctx["user_id"]})
            assert retry.body["item"]["id"] == stored["_id"]

    return Scenario(prepare, act, check)


async def _prepare_claim(live, n):
    if n == 0:
        _prepare_claim.case = await create_case(live, CASE)
    token, user_id = await funded_user(live, f"seller{n}", 300)
    opened = await live.api.post("/api/cases/open", {"caseId": _prepare_claim.case["id"]}, token=token)
    return {"token": token, "user_id": user_id, "item": opened.body["item"]}


async def _act_claim(live, ctx):
    return await live.api.post("/api/inventory/claim", {"itemId": ctx["item"]["id"]}, token=ctx["token"])


async def _check_claim(live, ctx):
    item = await live.db.inventory.find_one({"_id": ctx["item"]["id"]})
    user = await live.db.users.find_one({"_id": ctx["user_id"]})
    if item["status"] == "sold":
        assert user["balance"] == item["price"]
    else:  # the sale was never recorded: a retry sells it, once
        assert user["balance"] == 0
        assert (await _act_claim(live, ctx)).status == 200
    retry = await _act_claim(live, ctx)
    assert retry.status == 409
    assert (await live.db.users.find_one({"_id": ctx["user_id"]}))["balance"] == item["price"]


async def _prepare_payment(live, n):
    _, user_id = await funded_user(live, f"payer{n}", 0)
    payload = {"paymentId": f"pay_fault_{n}", "userId": user_id, "amount": 777, "currency": "USD",
               "status": "succeeded"}
    return {"user_id": user_id, "payload": payload}


async def _act_payment(live, ctx):
    raw, headers = live.api.webhook(ctx["payload"])
    return await live.api.post("/api/payment/callback", raw=raw, headers=headers)


async def _check_payment(live, ctx):
    retry = await _act_payment(live, ctx)  # the provider retries until it gets a 2xx
    assert retry.status == 200
    assert (await live.db.users.find_one({"_id": ctx["user_id"]}))["balance"] == 777


SCENARIOS = {
    "open": _open_scenario(key=False),
    "open_with_idempotency_key": _open_scenario(key=True),
    "claim": Scenario(_prepare_claim, _act_claim, _check_claim),
    "payment": Scenario(_prepare_payment, _act_payment, _check_payment),
}


@pytest.mark.parametrize("name", SCENARIOS)
async def test_failure_after_every_step_then_recovery(live, name):
    scenario = SCENARIOS[name]
    clean = await scenario.prepare(live, 0)
    reply, writes = await live.chaos.record(scenario.act(live, clean))
    assert reply.status == 200
    assert len(writes) >= 4, writes

    for point in failure_points(writes):
        ctx = await scenario.prepare(live, point.n)
        reply = await live.chaos.cut_off(point, scenario.act(live, ctx))
        assert_store_outage_answer(reply, point)
        await recovery.recover(live.db, grace_seconds=0)
        await assert_money_invariants(live.db)
        await scenario.check(live, ctx)
        await assert_money_invariants(live.db)


async def test_restart_completes_an_interrupted_opening(start_live):
    """A process dies after the debit: the next process's start-up recovery
    gives the player the item, and their socket hears about it."""
    first = await start_live()
    case = await create_case(first, CASE)
    token, user_id = await funded_user(first, "unlucky", 300)
    first.chaos.arm()
    await first.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    debit_step = next(i for i, w in enumerate(first.chaos.writes, 1) if w == ("users", "find_one_and_update"))
    # Undo that clean run's effects by using a second, fresh user for the real test.
    token, user_id = await funded_user(first, "unluckier", 300)
    first.chaos.arm(debit_step + 1)
    assert (await first.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).status == 503
    first.chaos.disarm()
    assert (await first.db.users.find_one({"_id": user_id}))["balance"] == 0
    assert await first.db.inventory.count_documents({"userId": user_id}) == 0

    second = await start_live()  # start-up runs recovery (grace 0 in tests)
    assert await second.db.inventory.count_documents({"userId": user_id}) == 1
    await assert_money_invariants(second.db)
    inventory = await second.api.get("/api/inventory", token=token)
    assert len(inventory.body["items"]) == 1
