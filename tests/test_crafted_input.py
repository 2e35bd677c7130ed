"""Crafted input found by an attack run: each is refused with a 400 and the
envelope, never a 500, and leaves nothing half-written. Also: verify uses the
client seed exactly as set, spaces included; a request whose client goes away
mid-body stops counting as in flight."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.support.client import WAIT
from tests.test_bad_input import assert_envelope, world  # noqa: F401  (fixture)
from tests.test_economy import create_case, funded_user


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    b64("[" * 3000),          # was a RecursionError in the JSON decoder
    b64("[1e20,\"x\"]"),      # was an OSError from fromtimestamp
    b64("[99999999999999999,\"x\"]"),
    "99999999999999_" + "a" * 32,  # 14 digits: past what the pattern admits
    "1_" + "A" * 32, "1_abc", "_" + "a" * 32, "1_" + "a" * 32 + "%0A", "%201_" + "a" * 32,
])
async def test_crafted_inventory_cursor_is_a_400(world, cursor):  # noqa: F811
    reply = await world.api.get(f"/api/inventory?cursor={cursor}", token=world.tokens["user"])
    assert_envelope(reply, 400, "invalid_cursor")


async def test_inventory_cursor_from_a_page_still_pages(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "pager", 5 * sample_case["price"])
    for _ in range(5):
        assert (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).status == 200
    first = (await live.api.get("/api/inventory?limit=2&cursor=", token=token)).body  # empty: first page
    cursor = first["nextCursor"]
    assert cursor and cursor.split("_")[0].isdigit()
    rest = (await live.api.get(f"/api/inventory?limit=10&cursor={cursor}", token=token)).body
    ids = [i["id"] for i in first["items"] + rest["items"]]
    assert len(ids) == 5 == len(set(ids)) and rest["nextCursor"] is None


@pytest.mark.parametrize("value", ["\u00b2", "\u00b9\u00b2", "1e3", "-5", "0x10"])
async def test_content_length_that_is_not_ascii_digits_is_a_400(world, value):  # noqa: F811
    """'²'.isdigit() is true and int('²') fails: every such header is a 400."""
    host, port = world.live.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (f"POST /api/cases/open HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {world.tokens['user']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {value}\r\nConnection: close\r\n\r\n")
    writer.write(head.encode("latin-1"))  # as HTTP/1.1 header bytes are read
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    status = int(raw.split(b" ", 2)[1])
    assert status == 400, raw[:300]
    body = raw.partition(b"\r\n\r\n")[2]
    if value.isdigit():  # reaches the handlers ('²'.isdigit() is true): the envelope
        assert json.loads(body)["code"] == "invalid_content_length", raw
    # others Tornado refuses itself before any handler runs (a bare 400)


@pytest.mark.parametrize("amount", [2**63, 2**64 + 5, 10**30, 1e30])
async def test_signed_webhook_with_huge_amount_is_a_400_and_its_audit_is_complete(live, amount):
    _, user = await live.api.register("whale")
    payload = {"paymentId": f"pay_huge_{amount!r}", "userId": user["id"], "amount": amount,
               "currency": "USD", "status": "succeeded"}
    raw, headers = live.api.webhook(json.dumps(payload).encode())
    reply = await live.api.post("/api/payment/callback", raw=raw, headers=headers)
    assert_envelope(reply, 400, "validation_error")
    deliveries = await live.db.payment_deliveries.find({}).to_list(None)
    assert len(deliveries) == 1
    assert deliveries[0]["outcome"] == "refused:validation_error" and "doneAt" in deliveries[0]
    assert "amount" not in deliveries[0]
    assert await live.db.operations.count_documents({}) == 0
    assert (await live.api.get("/api/profile", token=(await live.api.login("whale", "correct horse")))
            ).body["user"]["balance"] == 0


async def test_integral_float_amounts_are_taken_as_integers(live, sample_case):
    """JSON Schema (and so the OpenAPI document) counts 700.0 as an integer."""
    _, user = await live.api.register("floaty")
    payload = {"paymentId": "pay_float", "userId": user["id"], "amount": 700.0,
               "currency": "USD", "status": "succeeded"}
    raw, headers = live.api.webhook(json.dumps(payload).encode())
    assert (await live.api.post("/api/payment/callback", raw=raw, headers=headers)).status == 200
    case = {**sample_case, "price": 500.0, "items": [{**i, "price": float(i["price"]), "weight": float(i["weight"])}
                                                      for i in sample_case["items"]]}
    created = await create_case(live, case)
    assert created["price"] == 500 and isinstance(created["price"], int)
    for bad in (700.5, "700", True):
        refused = await live.api.post("/api/payment/callback", raw=live.api.webhook(
            json.dumps({**payload, "paymentId": f"pay_bad_{bad}", "amount": bad}).encode())[0],
            headers=live.api.webhook(json.dumps({**payload, "paymentId": f"pay_bad_{bad}", "amount": bad}).encode())[1])
        assert refused.status == 400, bad


SPACED = "  lucky seed with spaces  "


@pytest.mark.parametrize("seed", [SPACED, " ", "trailing ", " leading"])
async def test_verify_uses_the_client_seed_exactly(live, sample_case, seed):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "spacey", 20 * sample_case["price"])
    assert (await live.api.post("/api/fair/client-seed", {"clientSeed": seed}, token=token)).status == 200
    opened = [(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body for _ in range(20)]
    revealed = (await live.api.post("/api/fair/rotate", token=token)).body["previous"]
    assert revealed["clientSeed"] == seed
    quoted = seed.replace(" ", "%20")
    for opening in opened:
        reply = await live.api.get(
            f"/api/fair/verify?serverSeed={revealed['serverSeed']}&clientSeed={quoted}"
            f"&nonce={opening['fair']['nonce']}&caseId={case['id']}&version=1")
        assert reply.status == 200, reply
        assert reply.body["item"]["name"] == opening["item"]["name"]


async def test_a_client_gone_mid_body_is_no_longer_in_flight(live):
    """on_finish never runs for such a request; without counting its end, a
    graceful shutdown would wait out SHUTDOWN_TIMEOUT_SECONDS for it."""
    inflight = live.services.inflight
    host, port = live.base_url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"username\":")
    await writer.drain()

    # Barrier: a request sent after this one's headers is answered, so the
    # server has read this one's (already delivered) headers and started handling it.
    assert (await live.api.get("/health")).status == 200
    assert inflight.count == 1  # being handled, waiting for the rest of its body
    writer.close()
    await writer.wait_closed()
    assert await inflight.wait_idle(WAIT), f"still counted: {inflight.count}"
