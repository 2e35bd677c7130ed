"""Payment reversals (`refunded`, `charged_back`) and the deliveries list:
exactly once, never below zero (shortfall → suspension), under races between
deliveries, recovery passes and other money moves, and under injected
failures at every write."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from cyberhub.money import webhook
from cyberhub.platform.ids import now, ordered_id
from cyberhub.server import recovery
from tests.support.client import connect_socket
from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case, funded_user

CASE = {"name": "Plain", "price": 300,
        "items": [{"name": "Shard", "rarity": "common", "price": 120, "weight": 3},
                  {"name": "Crown", "rarity": "epic", "price": 900, "weight": 1}]}


async def deliveries(live, query: str = "") -> list[dict]:
    reply = await live.api.get(f"/api/admin/payments?{query}", token=await live.admin_token())
    assert reply.status == 200, reply
    return reply.body["deliveries"]


async def balance(live, user_id: str) -> int:
    return (await live.db.users.find_one({"_id": user_id}))["balance"]


async def test_refund_reverses_once_and_chargeback_after_it_is_a_duplicate(live):
    token, user_id = await funded_user(live, "refunded", 0)
    assert (await live.api.pay(user_id, 1000, payment_id="p1")).status == 200
    reply = await live.api.pay(user_id, 1000, payment_id="p1", status="refunded")
    assert reply.status == 200 and reply.body == {"success": True, "duplicate": False}, reply
    assert await balance(live, user_id) == 0
    again = await live.api.pay(user_id, 1000, payment_id="p1", status="refunded")
    assert again.status == 200 and again.body["duplicate"] is True
    charged = await live.api.pay(user_id, 1000, payment_id="p1", status="charged_back")
    assert charged.status == 200 and charged.body["duplicate"] is True
    assert await balance(live, user_id) == 0
    entry = await live.db.ledger.find_one({"_id": "reverse:p1"})
    assert entry["reason"] == "payment_reversal" and entry["delta"] == -1000 and entry["refId"] == "p1"
    listed = await deliveries(live, "paymentId=p1")
    assert [d["outcome"] for d in listed] == ["duplicate", "duplicate", "reversed", "credited"]
    assert listed[2]["reversedAmount"] == 1000 and listed[2]["shortfall"] == 0
    assert (await live.api.get("/api/profile", token=token)).status == 200, "no shortfall: not suspended"
    detail = (await live.api.get(f"/api/admin/users/{user_id}", token=await live.admin_token())).body["user"]
    assert detail["deposited"] == 1000 and detail["reversed"] == 1000
    await assert_money_invariants(live.db)


async def test_shortfall_debits_what_there_is_and_suspends(live):
    case = await create_case(live, CASE)
    token, user_id = await funded_user(live, "spent_it", 0)
    assert (await live.api.pay(user_id, 1000, payment_id="p2")).status == 200
    assert (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).status == 200
    reply = await live.api.pay(user_id, 1000, payment_id="p2", status="charged_back")
    assert reply.status == 200, reply
    assert await balance(live, user_id) == 0
    entry = await live.db.ledger.find_one({"_id": "reverse:p2"})
    assert entry["delta"] == -700 and entry["shortfall"] == 300
    [delivery] = await deliveries(live, "paymentId=p2&status=charged_back")
    assert delivery["outcome"] == "reversed" and delivery["reversedAmount"] == 700 and delivery["shortfall"] == 300
    refused = await live.api.get("/api/profile", token=token)
    assert refused.status == 403 and refused.body["code"] == "account_suspended"
    user = (await live.api.get(f"/api/admin/users/{user_id}", token=await live.admin_token())).body["user"]
    assert user["suspended"]["by"] == "system" and "p2" in user["suspended"]["reason"]
    assert await live.db.inventory.count_documents({"userId": user_id}) == 1, "items stay"
    await assert_money_invariants(live.db)


async def test_refund_before_credit_is_recorded_and_blocks_the_credit(live):
    _, user_id = await funded_user(live, "early", 0)
    first = await live.api.pay(user_id, 500, payment_id="p3", status="refunded")
    assert first.status == 200 and first.body["duplicate"] is False
    late = await live.api.pay(user_id, 500, payment_id="p3")
    assert late.status == 200 and late.body["duplicate"] is True
    assert await balance(live, user_id) == 0
    assert [d["outcome"] for d in await deliveries(live, "paymentId=p3")] == ["recorded", "recorded"]
    assert (await live.api.pay(user_id, 500, payment_id="p3", status="refunded")).body["duplicate"] is True
    await assert_money_invariants(live.db)


async def test_partial_or_foreign_refund_is_refused(live):
    _, user_id = await funded_user(live, "partial", 0)
    _, other = await funded_user(live, "other", 0)
    assert (await live.api.pay(user_id, 900, payment_id="p4")).status == 200
    partial = await live.api.pay(user_id, 400, payment_id="p4", status="refunded")
    assert partial.status == 409 and partial.body["code"] == "refund_amount_mismatch", partial
    foreign = await live.api.pay(other, 900, payment_id="p4", status="refunded")
    assert foreign.status == 409 and foreign.body["code"] == "payment_conflict", foreign
    assert await balance(live, user_id) == 900
    outcomes = [d["outcome"] for d in await deliveries(live, "paymentId=p4")]
    assert outcomes == ["refused:payment_conflict", "refused:refund_amount_mismatch", "credited"]
    await assert_money_invariants(live.db)


async def test_deliveries_list_filters_and_pages(live):
    _, user_id = await funded_user(live, "lister", 0)
    for n in range(5):
        assert (await live.api.pay(user_id, 10 + n, payment_id=f"list{n}")).status == 200
    raw, headers = live.api.webhook({"paymentId": "forged"}, secret="wrong" * 8)
    assert (await live.api.post("/api/payment/callback", raw=raw, headers=headers)).status == 401
    everyone = await deliveries(live)
    assert everyone[0]["outcome"] == "refused:invalid_signature" and everyone[0]["paymentId"] is None
    mine = await deliveries(live, f"userId={user_id}")
    assert [d["paymentId"] for d in mine] == [f"list{n}" for n in range(4, -1, -1)]
    assert set(mine[0]) >= {"paymentId", "userId", "amount", "currency", "status", "outcome", "receivedAt"}
    token = await live.admin_token()
    seen, cursor = [], ""
    while True:
        page = await live.api.get(f"/api/admin/payments?userId={user_id}&limit=2&cursor={cursor}", token=token)
        seen += [d["paymentId"] for d in page.body["deliveries"]]
        cursor = page.body["nextCursor"]
        if cursor is None:
            break
    assert seen == [d["paymentId"] for d in mine]
    assert (await live.api.get("/api/admin/payments?cursor=x", token=token)).status == 400
    assert (await live.api.get("/api/admin/payments?status=" + "s" * 33, token=token)).status == 400


async def test_deliveries_of_one_millisecond_list_in_the_order_they_arrived(live):
    """Deliveries are timed to the millisecond and a webhook is answered in
    about one: a burst has several per millisecond. Newest first must still
    be exactly the reverse of arrival (their ids sort in the order made)."""
    _, user_id = await funded_user(live, "burst", 0)
    settings = live.services.settings
    rules = webhook.PaymentRules.from_settings(settings)
    sent = [f"burst{n:02d}" for n in range(30)]
    for payment_id in sent:  # in-process, a few per millisecond (over HTTP each takes about one)
        raw, headers = live.api.webhook({"paymentId": payment_id, "userId": user_id, "amount": 10,
                                         "currency": settings.currency, "status": "succeeded"})
        result = await webhook.handle_delivery(live.db, raw_body=raw, signature=headers["X-Signature"],
                                               rules=rules, remote_ip="127.0.0.1")
        assert not result.duplicate
    listed = await deliveries(live, f"userId={user_id}&limit=100")
    assert [d["paymentId"] for d in listed] == sent[::-1]


def test_ordered_ids_sort_in_the_order_they_were_made():
    made = [ordered_id() for _ in range(10_000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made[:10])


async def test_reversals_racing_deliveries_recovery_and_other_moves(live):
    """Refund deliveries, recovery passes and openings/adjustments that change
    the balance, all at once: each reversal takes min(amount, balance at its
    move) exactly once, and the ledger holds."""
    case = await create_case(live, CASE)
    admin = await live.admin_token()
    players = []
    for n in range(4):
        token, user_id = await funded_user(live, f"racer{n}", 0)
        assert (await live.api.pay(user_id, 1500, payment_id=f"race{n}")).status == 200
        players.append((token, user_id))
    work = []
    for n, (token, user_id) in enumerate(players):
        work += [live.api.pay(user_id, 1500, payment_id=f"race{n}", status="refunded") for _ in range(5)]
        work += [live.api.pay(user_id, 1500, payment_id=f"race{n}", status="charged_back") for _ in range(3)]
        work += [live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token) for _ in range(2)]
        work += [live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": 200, "reason": "race"},
                               token=admin)]
    work += [recovery.recover(live.db, grace_seconds=0) for _ in range(4)]
    results = await asyncio.gather(*work)
    replies = [r for r in results if hasattr(r, "status")]
    assert all(r.status in (200, 403, 409) for r in replies), Counter(r.status for r in replies)
    await recovery.recover(live.db, grace_seconds=0)
    for n, (_, user_id) in enumerate(players):
        entries = await live.db.ledger.find({"userId": user_id, "reason": "payment_reversal"}).to_list(None)
        assert len(entries) == 1, entries
        delivered = await live.db.payment_deliveries.count_documents(
            {"paymentId": f"race{n}", "outcome": "reversed"})
        assert delivered == 1
    await assert_money_invariants(live.db)


async def test_recovery_passes_finish_an_interrupted_reversal_once(live):
    """A reversal recorded but not applied (the process died): several
    recovery passes racing a retried delivery and balance changes apply it once."""
    admin = await live.admin_token()
    _, user_id = await funded_user(live, "interrupted", 0)
    assert (await live.api.pay(user_id, 800, payment_id="cut")).status == 200
    op = {"_id": "reverse:cut", "kind": "reverse", "userId": user_id, "state": "pending", "paymentId": "cut",
          "amount": 800, "status": "refunded"}
    await live.db.operations.insert_one({**op, "createdAt": now(), "updatedAt": now()})
    work = [recovery.recover(live.db, grace_seconds=0) for _ in range(5)]
    work += [live.api.pay(user_id, 800, payment_id="cut", status="refunded") for _ in range(3)]
    work += [live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": a, "reason": "x"}, token=admin)
             for a in (-500, 50, 300)]
    await asyncio.gather(*work)
    entries = await live.db.ledger.find({"reason": "payment_reversal"}).to_list(None)
    assert len(entries) == 1
    await assert_money_invariants(live.db)


@pytest.mark.parametrize("after_apply", [False, True])
async def test_reversal_failing_at_every_write_then_recovery(live, after_apply):
    _, probe = await funded_user(live, "probe", 0)
    assert (await live.api.pay(probe, 600, payment_id="probe")).status == 200
    ok, writes = await live.chaos.record(live.api.pay(probe, 600, payment_id="probe", status="refunded"))
    assert ok.status == 200 and len(writes) >= 4, (ok, writes)
    for index in range(1, len(writes) + 1):
        _, user_id = await funded_user(live, f"faulty{index}", 0)
        pid = f"fault{index}"
        assert (await live.api.pay(user_id, 600, payment_id=pid)).status == 200
        live.chaos.arm(index, after_apply=after_apply)
        reply = await live.api.pay(user_id, 600, payment_id=pid, status="refunded")
        live.chaos.disarm()
        assert live.chaos.tripped and reply.status == 503, (index, writes[index - 1], reply)
        await recovery.recover(live.db, grace_seconds=0)
        await assert_money_invariants(live.db)
        retry = await live.api.pay(user_id, 600, payment_id=pid, status="refunded")
        assert retry.status == 200, retry
        assert await balance(live, user_id) == 0
        assert await live.db.ledger.count_documents({"_id": f"reverse:{pid}"}) == 1
        await assert_money_invariants(live.db)


async def test_a_shortfall_suspension_applied_by_recovery_disconnects_the_players_sockets(live):
    """The process that took the refund died before the debit; the recovery pass
    that finishes it suspends the player for the shortfall and, like the live
    request would, disconnects their sockets."""
    admin = await live.admin_token()
    token, user_id = await funded_user(live, "short_later", 0)
    assert (await live.api.pay(user_id, 800, payment_id="later_cut")).status == 200
    spent = await live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": -500, "reason": "x"},
                                token=admin)
    assert spent.status == 200, spent
    client, _rec = await connect_socket(live.base_url, token=token)
    gone = asyncio.Event()
    client.on("disconnect", lambda *a: gone.set())
    op = {"_id": "reverse:later_cut", "kind": "reverse", "userId": user_id, "state": "pending",
          "paymentId": "later_cut", "amount": 800, "status": "charged_back"}
    await live.db.operations.insert_one({**op, "createdAt": now(), "updatedAt": now()})
    report = await recovery.recover_and_notify(live.services, grace_seconds=0)
    assert report.completed == ["reverse:later_cut"]
    await asyncio.wait_for(gone.wait(), 10)
    assert await balance(live, user_id) == 0
    assert (await live.db.users.find_one({"_id": user_id}))["suspended"]["by"] == "system"
    await assert_money_invariants(live.db)
