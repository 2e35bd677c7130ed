"""The payment provider's webhook: signature, window, validation, idempotency,
audit trail. The ledger may change only for the first valid delivery."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.support.client import connect_socket
from tests.support.invariants import assert_money_invariants


async def ledger_snapshot(db) -> list:
    return sorted((e["_id"], e["delta"]) for e in await db.ledger.find({}).to_list(None))


def payload_for(user_id: str, **overrides) -> dict:
    return {"paymentId": "pay_1", "userId": user_id, "amount": 1500, "currency": "USD", "status": "succeeded",
            **overrides}


async def test_valid_payment_credits_once_and_emits_balance(live):
    token, user = await live.api.register("payer")
    socket, recorder = await connect_socket(live.base_url, token=token)
    try:
        raw, headers = live.api.webhook(payload_for(user["id"]))
        first = await live.api.post("/api/payment/callback", raw=raw, headers=headers)
        assert first.status == 200 and first.body == {"success": True, "duplicate": False}
        assert (await recorder.wait_for(f"balance:updated:{user['id']}"))[0] == {"balance": 1500}
        replay = await live.api.post("/api/payment/callback", raw=raw, headers=headers)
        assert replay.status == 200 and replay.body == {"success": True, "duplicate": True}
        # A later, freshly signed repeat of the same paymentId is a duplicate too.
        again = await live.api.pay(user["id"], 1500, payment_id="pay_1")
        assert again.body["duplicate"] is True
    finally:
        await socket.disconnect()
    profile = await live.api.get("/api/profile", token=token)
    assert profile.body["user"]["balance"] == 1500
    entry = await live.db.ledger.find_one({"reason": "payment"})
    assert (entry["delta"], entry["refId"], entry["balanceAfter"]) == (1500, "pay_1", 1500)
    await assert_money_invariants(live.db)


async def test_rejected_deliveries_leave_the_ledger_untouched(live):
    _, user = await live.api.register("target")
    uid = user["id"]
    now = int(time.time())
    good = json.dumps(payload_for(uid)).encode()

    def signed(body: bytes, ts: int = now, secret: str = WEBHOOK_SECRET) -> dict:
        return live.api.webhook(body, timestamp=ts, secret=secret)[1]

    cases = [
        ("forged", good, signed(good, secret="wrong-secret"), 401, "invalid_signature"),
        ("tampered body", good.replace(b"1500", b"9999"), signed(good), 401, "invalid_signature"),
        ("no signature", good, {}, 401, "invalid_signature"),
        ("malformed header", good, {"X-Signature": "garbage"}, 401, "invalid_signature"),
        ("expired", good, signed(good, ts=now - 301), 401, "signature_expired"),
        # Far beyond the window: "now + 301" turned valid when the run was slow (the server's
        # clock moves on); the exact boundary is tested on verify_signature with a fixed clock.
        ("future beyond window", good, signed(good, ts=now + 3600), 401, "signature_expired"),
        ("malformed JSON", b"{not json", signed(b"{not json"), 400, "invalid_json"),
        ("missing fields", b'{"paymentId":"p"}', signed(b'{"paymentId":"p"}'), 400, "validation_error"),
        ("negative amount", *_body(payload_for(uid, amount=-5), signed), 400, "validation_error"),
        ("zero amount", *_body(payload_for(uid, amount=0), signed), 400, "validation_error"),
        ("float amount", *_body(payload_for(uid, amount=15.5), signed), 400, "validation_error"),
        ("string amount", *_body(payload_for(uid, amount="1500"), signed), 400, "validation_error"),
        ("unknown field", *_body(payload_for(uid, extra=1), signed), 400, "validation_error"),
        ("over maximum", *_body(payload_for(uid, amount=10**12), signed), 400, "amount_too_large"),
        ("other currency", *_body(payload_for(uid, currency="EUR"), signed), 400, "unsupported_currency"),
        ("unknown user", *_body(payload_for("no-such-user"), signed), 404, "user_not_found"),
    ]
    for name, raw, headers, status, code in cases:
        reply = await live.api.post("/api/payment/callback", raw=raw, headers=headers)
        assert (reply.status, reply.body["code"]) == (status, code), name
        assert reply.body["success"] is False and isinstance(reply.body["error"], str), name
    assert await ledger_snapshot(live.db) == []
    assert (await live.db.users.find_one({"_id": uid}))["balance"] == 0
    assert await live.db.operations.count_documents({}) == 0
    deliveries = await live.db.payment_deliveries.find({}).to_list(None)
    assert len(deliveries) == len(cases), "every delivery is kept for audit"
    assert all(d["outcome"].startswith("refused:") for d in deliveries)

    # The real one still credits after all that.
    reply = await live.api.post("/api/payment/callback", raw=good, headers=signed(good))
    assert reply.status == 200 and reply.body["duplicate"] is False
    assert await ledger_snapshot(live.db) == [("pay:pay_1", 1500)]


def _body(payload: dict, signed) -> tuple[bytes, dict]:
    raw = json.dumps(payload).encode()
    return raw, signed(raw)


async def test_non_succeeded_status_is_recorded_and_does_not_use_up_the_id(live):
    _, user = await live.api.register("patient")
    for status in ("pending", "failed", "pending"):
        reply = await live.api.pay(user["id"], 900, payment_id="pay_slow", status=status)
        assert reply.status == 200 and reply.body == {"success": True, "duplicate": False}
    assert (await live.db.users.find_one({"_id": user["id"]}))["balance"] == 0
    assert (await live.api.pay(user["id"], 900, payment_id="pay_slow")).body["duplicate"] is False
    assert (await live.api.pay(user["id"], 900, payment_id="pay_slow")).body["duplicate"] is True
    assert (await live.db.users.find_one({"_id": user["id"]}))["balance"] == 900
    arrived = live.db.payment_deliveries.find({}).sort([("receivedAt", 1), ("_id", 1)])
    outcomes = [d["outcome"] for d in await arrived.to_list(None)]
    assert outcomes == ["recorded", "recorded", "recorded", "credited", "duplicate"]
    await assert_money_invariants(live.db)


async def test_same_payment_id_with_different_amount_is_409_and_not_credited(live):
    _, user = await live.api.register("greedy")
    await live.api.pay(user["id"], 100, payment_id="pay_x")
    reply = await live.api.pay(user["id"], 100_000, payment_id="pay_x")
    assert reply.status == 409 and reply.body["code"] == "payment_conflict"
    assert (await live.db.users.find_one({"_id": user["id"]}))["balance"] == 100
    last = await live.db.payment_deliveries.find({}).sort([("receivedAt", -1), ("_id", -1)]).limit(1).to_list(None)
    assert last[0]["outcome"] == "refused:payment_conflict"


async def test_malformed_signature_timestamps_are_401_not_500(live):
    _, user = await live.api.register("stamp")
    raw = json.dumps(payload_for(user["id"])).encode()
    good = live.api.webhook(raw)[1]["X-Signature"]
    v1 = good.split(",")[1]
    for stamp in ("9" * 5000, "²", "-5", "1e9", ""):
        reply = await live.api.post("/api/payment/callback", raw=raw,
                                    headers={"X-Signature": f"t={stamp},{v1}".encode("latin-1").decode("latin-1")})
        assert reply.status == 401 and reply.body["code"] == "invalid_signature", stamp
    assert await ledger_snapshot(live.db) == []


async def test_forged_deliveries_are_limited_per_ip_and_stored_short(start_live):
    live = await start_live(rate_limit_webhook_forged_per_ip="2/minute")
    _, user = await live.api.register("spammed")
    big = json.dumps({**payload_for(user["id"]), "paymentId": "x" * 100, "pad": "p" * 20_000}).encode()
    for _ in range(2):
        reply = await live.api.post("/api/payment/callback", raw=big, headers={"X-Signature": "t=1,v1=00"})
        assert reply.status == 401
    limited = await live.api.post("/api/payment/callback", raw=big, headers={"X-Signature": "t=1,v1=00"})
    assert limited.status == 429 and limited.body["code"] == "rate_limited"
    stored = await live.db.payment_deliveries.find({}).to_list(None)
    assert len(stored) == 2 and all(len(d["body"]) <= 1024 and d["bodyBytes"] == len(big) for d in stored)
    # The provider's correctly signed deliveries are not affected by the forgeries.
    assert (await live.api.pay(user["id"], 300)).status == 200


async def test_unknown_user_is_404_whatever_the_status(live):
    for status in ("pending", "succeeded"):
        reply = await live.api.pay("no-such-user", 100, status=status)
        assert reply.status == 404 and reply.body["code"] == "user_not_found", status


def test_signature_window_boundary_with_a_fixed_clock():
    from cyberhub.money.webhook import sign, verify_signature
    from cyberhub.platform.errors import Unauthorized

    body, ts = b'{"x":1}', 1_800_000_000
    header = sign("secret", body, ts)
    for now_ts in (ts - 300, ts, ts + 300):
        verify_signature(header, body, secret="secret", now_ts=now_ts, tolerance=300)
    for now_ts in (ts - 301, ts + 301):
        with pytest.raises(Unauthorized):
            verify_signature(header, body, secret="secret", now_ts=now_ts, tolerance=300)
