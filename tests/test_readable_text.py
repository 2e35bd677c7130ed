"""Free text an operator reads — adjustment and suspension reasons, case and
item names, image URLs — refuses control characters (NUL, ESC, CR/LF, DEL, C1) and the
bidi embedding/override/isolate marks (U+202A-U+202E, U+2066-U+2069): 400
`validation_error`, nothing written, and the OpenAPI document's pattern says
the same (schemathesis generates from it)."""

from __future__ import annotations

import re

import pytest

from cyberhub.platform.text import is_readable
from tests.test_economy import funded_user

BAD = ["nul\x00here", "\x1b[31mred", "line\r\nforged: entry", "del\x7f", "c1\x85", "evil\u202etxt.exe",
       "iso\u2066late\u2069"]
GOOD = ["goodwill — café 漢字 🎁", "  trimmed? no: kept as sent  "]


def assert_refused(reply) -> None:
    assert reply.status == 400, reply
    assert reply.body["success"] is False and reply.body["code"] == "validation_error", reply.body
    assert "control" in reply.body["details"][0]["message"], reply.body


@pytest.mark.parametrize("text", BAD, ids=[repr(t) for t in BAD])
async def test_reasons_and_names_with_control_or_bidi_characters_are_refused(live, sample_case, text):
    token = await live.admin_token()
    _, user_id = await funded_user(live, "reader", 1000)
    ledger_before = await live.db.ledger.count_documents({})

    assert_refused(await live.api.post(f"/api/admin/users/{user_id}/adjustments",
                                       {"amount": 5, "reason": text}, token=token))
    assert_refused(await live.api.post(f"/api/admin/users/{user_id}/suspend", {"reason": text}, token=token))
    assert_refused(await live.api.post("/api/admin/cases", {**sample_case, "name": text}, token=token))
    item = {**sample_case["items"][0], "name": text}
    assert_refused(await live.api.post("/api/admin/cases", {**sample_case, "items": [item]}, token=token))
    assert_refused(await live.api.post("/api/admin/cases", {**sample_case, "image": f"https://x.example/{text}"},
                                       token=token))

    user = await live.db.users.find_one({"_id": user_id})
    assert user["balance"] == 1000 and not user.get("suspended")
    assert await live.db.ledger.count_documents({}) == ledger_before
    assert await live.db.cases.count_documents({}) == 0
    assert await live.db.admin_audit.count_documents({}) == 0


async def test_readable_text_in_any_language_is_kept(live):
    token = await live.admin_token()
    _, user_id = await funded_user(live, "reader", 1000)
    for text in GOOD:
        reply = await live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": 5, "reason": text},
                                    token=token)
        assert reply.status == 200, reply
    entries = (await live.api.get(f"/api/admin/users/{user_id}/ledger", token=token)).body["entries"]
    assert [e["text"] for e in entries[:2]] == GOOD[::-1]


async def test_the_openapi_patterns_refuse_the_same_characters(live):
    schemas = (await live.api.get("/api/openapi.json")).body["components"]["schemas"]
    fields = {
        "AdjustmentRequest": "reason", "SuspendRequest": "reason", "CaseInput": "name", "CaseItemInput": "name",
    }
    for schema, field in fields.items():
        spec = schemas[schema]["properties"][field]
        pattern = re.compile(spec["pattern"])
        for text in BAD:
            assert not pattern.search(text) and not is_readable(text), (schema, text)
        for text in GOOD:
            assert pattern.search(text), (schema, text)
        assert not pattern.search(" \t\u00a0"), "blank text is refused too"
    image = re.compile(schemas["CaseInput"]["properties"]["image"]["anyOf"][0]["pattern"])
    assert all(not image.search(f"https://x.example/{text}") for text in BAD)
    assert image.search("https://cdn.example/cases/starter.png") and image.search("")
