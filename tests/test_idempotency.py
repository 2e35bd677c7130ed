"""Idempotency-Key on POST /api/cases/open."""

from __future__ import annotations

from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case, funded_user


async def test_retry_returns_first_result_and_charges_once(live, sample_case):
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "careful", 1000)
    headers = {"Idempotency-Key": "abc-123"}
    first = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token, headers=headers)
    second = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token, headers=headers)
    assert first.status == second.status == 200
    assert first.body == second.body
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 500
    # A new key is a new opening.
    third = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token,
                                headers={"Idempotency-Key": "abc-124"})
    assert third.status == 200 and third.body["item"]["id"] != first.body["item"]["id"]
    await assert_money_invariants(live.db)


async def test_same_key_different_body_is_409(live, sample_case):
    case = await create_case(live, sample_case)
    other = await create_case(live, {**sample_case, "name": "Other"})
    token, user_id = await funded_user(live, "mixer", 1000)
    headers = {"Idempotency-Key": "k1"}
    assert (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token, headers=headers)).status == 200
    reply = await live.api.post("/api/cases/open", {"caseId": other["id"]}, token=token, headers=headers)
    assert reply.status == 409 and reply.body["code"] == "idempotency_key_reused"
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 500


async def test_keys_are_per_user(live, sample_case):
    case = await create_case(live, sample_case)
    token_a, a = await funded_user(live, "user_a", 500)
    token_b, b = await funded_user(live, "user_b", 500)
    headers = {"Idempotency-Key": "shared-key"}
    ra = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token_a, headers=headers)
    rb = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token_b, headers=headers)
    assert ra.status == rb.status == 200 and ra.body["item"]["id"] != rb.body["item"]["id"]
    assert {(await live.db.users.find_one({"_id": u}))["balance"] for u in (a, b)} == {0}


async def test_failed_request_is_not_remembered(live, sample_case):
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "topup_later", 100)
    headers = {"Idempotency-Key": "retry-after-topup"}
    refused = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token, headers=headers)
    assert refused.status == 409 and refused.body["code"] == "insufficient_balance"
    await live.api.pay(user_id, 400)
    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token, headers=headers)
    assert reply.status == 200 and reply.body["balance"] == 0
    await assert_money_invariants(live.db)


async def test_invalid_keys_are_400(live, sample_case):
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "keysmith", 500)
    for key in ("x" * 256, "has space", "tab\tkey"):
        reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token,
                                    headers={"Idempotency-Key": key})
        assert reply.status == 400 and reply.body["code"] == "invalid_idempotency_key", key
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 500


async def test_keys_expire_after_the_configured_ttl_index(live):
    indexes = await live.db.idempotency_keys.index_information()
    ttl = [spec for spec in indexes.values() if "expireAfterSeconds" in spec]
    assert ttl and ttl[0]["expireAfterSeconds"] >= 24 * 3600


async def test_changing_the_ttl_setting_rebuilds_the_index(start_live):
    """IDEMPOTENCY_TTL_HOURS changed on an existing database: start-up replaces
    the index instead of failing with 'index already exists with different options'."""
    first = await start_live()
    second = await start_live(idempotency_ttl_hours=48)
    indexes = await second.db.idempotency_keys.index_information()
    assert indexes["createdAt_1"]["expireAfterSeconds"] == 48 * 3600
    assert first.server.port != second.server.port


async def test_a_key_request_that_cannot_start_in_time_changes_nothing(start_live, sample_case):
    """A request whose key insert took longer than OPERATION_DEADLINE_SECONDS
    must not go on: recovery may already have forgotten its key, and a retry
    with the same key would run the operation again. (A deadline of 1 µs makes
    every request too late, without any timing in the test.)"""
    live = await start_live(operation_deadline_seconds=1e-6)
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "too_late", 1000)
    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token,
                                headers={"Idempotency-Key": "late-1"})
    assert reply.status == 503 and reply.body["code"] == "operation_timeout", reply
    assert "took too long to start" in reply.body["error"], "refused before the opening began"
    assert await live.db.idempotency_keys.count_documents({}) == 0
    assert await live.db.operations.count_documents({"kind": "open"}) == 0
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 1000
    await assert_money_invariants(live.db)
