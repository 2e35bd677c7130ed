"""How many store calls one opening makes (each is a network round trip on a
real MongoDB), counted by the test store proxy; docs/MONEY.md lists them."""

from __future__ import annotations

from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case, funded_user

OPENING = [
    ("users", "find_one"),  # authentication: the token's user (also the opening's balance, seed pair, nonce)
    ("operations", "insert_one"),  # 1. intent: the operation record with the whole plan
    ("users", "find_one_and_update"),  # 2. the guarded debit (balance, seed, nonce, marker)
    ("inventory", "insert_one"),  # 3. the item
    ("openings", "insert_one"),  # 3. the opening record (verification, drops feed)
    ("ledger", "insert_one"),  # 3. the ledger entry
    ("operations", "update_one"),  # 4. close the operation
]


async def _steady(live, sample_case):
    """A case, a funded user, and one opening already made (caches warm); the
    catalogue stamp check of openings is pushed out so it cannot fall in."""
    live.services.catalogue_cache.open_check_seconds = 3600
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "counted", 5000)
    assert (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).status == 200
    return case, token


async def test_an_opening_makes_seven_store_calls(live, sample_case):
    case, token = await _steady(live, sample_case)
    live.chaos.arm()
    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    calls = list(live.chaos.calls)
    live.chaos.disarm()
    assert reply.status == 200, reply
    assert calls == OPENING
    await assert_money_invariants(live.db)


async def test_an_opening_with_an_idempotency_key_makes_two_more(live, sample_case):
    case, token = await _steady(live, sample_case)
    live.chaos.arm()
    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token,
                                headers={"Idempotency-Key": "counted-1"})
    calls = list(live.chaos.calls)
    live.chaos.disarm()
    assert reply.status == 200, reply
    assert calls == [OPENING[0], ("idempotency_keys", "insert_one"), *OPENING[1:],
                     ("idempotency_keys", "update_one")]


async def test_an_edit_through_this_process_reaches_the_next_opening_at_once(live, sample_case):
    """Openings take the case from the catalogue cache; a change made through
    this process drops it, so the next opening pays the new price."""
    case, token = await _steady(live, sample_case)
    admin = await live.admin_token()
    pricier = {**sample_case, "price": 700}
    assert (await live.api.call("PUT", f"/api/admin/cases/{case['id']}", pricier, token=admin)).status == 200
    before = (await live.api.get("/api/profile", token=token)).body["user"]["balance"]
    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    assert reply.status == 200 and reply.body["balance"] == before - 700, reply
    assert reply.body["item"]["caseVersion"] == 2
    assert (await live.api.call("DELETE", f"/api/admin/cases/{case['id']}", token=admin)).status == 200
    gone = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    assert gone.status == 404 and gone.body["code"] == "case_not_found", gone
    await assert_money_invariants(live.db)


async def test_closing_a_discarded_operation_writes_it_back_closed(raw_db):
    """Closing is one update; only when recovery discarded the record meanwhile
    is the whole record written back (closed) by an upsert."""
    from cyberhub.money import operations
    from cyberhub.platform.ids import as_utc

    op = await operations.begin(raw_db, "op-back", kind="open", user_id="u1", price=300)
    await operations.finish(raw_db, op)
    assert (await raw_db.operations.find_one({"_id": "op-back"}))["state"] == operations.DONE
    lost = await operations.begin(raw_db, "op-lost", kind="open", user_id="u2", price=400)
    await operations.discard(raw_db, "op-lost")
    assert await raw_db.operations.find_one({"_id": "op-lost"}) is None
    await operations.finish(raw_db, lost)
    back = await raw_db.operations.find_one({"_id": "op-lost"})
    assert back["state"] == operations.DONE and back["price"] == 400 and back["userId"] == "u2"
    assert as_utc(back["createdAt"]) == lost["createdAt"]
