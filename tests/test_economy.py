"""Opening cases, the inventory and selling, end to end through the live server."""

from __future__ import annotations

from tests.support.client import connect_socket
from tests.support.invariants import assert_money_invariants


async def create_case(live, case: dict) -> dict:
    reply = await live.api.post("/api/admin/cases", case, token=await live.admin_token())
    assert reply.status == 201, reply
    return reply.body["case"]


async def funded_user(live, name: str, amount: int) -> tuple[str, str]:
    token, user = await live.api.register(name)
    if amount:
        assert (await live.api.pay(user["id"], amount)).status == 200
    return token, user["id"]


async def test_open_debits_draws_and_adds_item(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "opener", 1200)
    fair_before = (await live.api.get("/api/fair", token=token)).body["fair"]

    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    assert reply.status == 200, reply
    body = reply.body
    assert body["success"] is True and body["balance"] == 700
    item = body["item"]
    assert item["status"] == "owned" and item["caseId"] == case["id"]
    assert item["name"] in {i["name"] for i in sample_case["items"]}
    assert body["fair"] == {**fair_before, "nonce": 0}

    profile = (await live.api.get("/api/profile", token=token)).body["user"]
    assert profile["balance"] == 700 and profile["casesOpened"] == 1 and profile["itemsOwned"] == 1
    assert profile["fair"]["nonce"] == 1
    inventory = (await live.api.get("/api/inventory", token=token)).body
    assert [i["id"] for i in inventory["items"]] == [item["id"]] and inventory["nextCursor"] is None
    await assert_money_invariants(live.db)


async def test_insufficient_balance_is_409_and_changes_nothing(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "poor", 499)
    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    assert reply.status == 409
    assert reply.body == {"success": False, "error": "Insufficient balance", "code": "insufficient_balance"}
    assert (await live.api.get("/api/profile", token=token)).body["user"]["balance"] == 499
    assert await live.db.inventory.count_documents({}) == 0
    assert await live.db.operations.count_documents({"kind": "open"}) == 0
    await assert_money_invariants(live.db)


async def test_unknown_and_deleted_case_is_404(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "seeker", 5000)
    assert (await live.api.post("/api/cases/open", {"caseId": "nope"}, token=token)).status == 404
    admin = await live.admin_token()
    assert (await live.api.call("DELETE", f"/api/admin/cases/{case['id']}", token=admin)).status == 200
    reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    assert reply.status == 404 and reply.body["code"] == "case_not_found"
    assert (await live.api.get("/api/profile", token=token)).body["user"]["balance"] == 5000


async def test_claim_sells_once_and_credits_price(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "seller", 500)
    item = (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"]
    reply = await live.api.post("/api/inventory/claim", {"itemId": item["id"]}, token=token)
    assert reply.status == 200
    assert reply.body == {"success": True, "itemId": item["id"], "amount": item["price"], "balance": item["price"]}
    again = await live.api.post("/api/inventory/claim", {"itemId": item["id"]}, token=token)
    assert again.status == 409 and again.body["code"] == "item_already_sold"
    listed = (await live.api.get("/api/inventory", token=token)).body["items"]
    assert listed[0]["status"] == "sold" and listed[0]["soldAt"] is not None
    await assert_money_invariants(live.db)


async def test_claim_of_other_users_or_unknown_item_is_404(live, sample_case):
    case = await create_case(live, sample_case)
    owner, _ = await funded_user(live, "owner", 500)
    thief, _ = await funded_user(live, "thief", 0)
    item = (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=owner)).body["item"]
    for item_id in (item["id"], "does-not-exist"):
        reply = await live.api.post("/api/inventory/claim", {"itemId": item_id}, token=thief)
        assert reply.status == 404 and reply.body["code"] == "item_not_found"
    assert (await live.db.inventory.find_one({"_id": item["id"]}))["status"] == "owned"
    await assert_money_invariants(live.db)


async def test_inventory_pages_newest_first(live):
    cheap = {"name": "Penny", "price": 1, "items": [{"name": "Coin", "rarity": "common", "price": 1, "weight": 1}]}
    case = await create_case(live, cheap)
    token, _ = await funded_user(live, "collector", 7)
    opened = [(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"]["id"]
              for _ in range(7)]
    seen, cursor = [], None
    while True:
        path = "/api/inventory?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await live.api.get(path, token=token)).body
        assert len(page["items"]) <= 3
        seen += [i["id"] for i in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(opened))
    for bad in ("/api/inventory?limit=0", "/api/inventory?limit=101", "/api/inventory?limit=x",
                "/api/inventory?cursor=!!notbase64"):
        reply = await live.api.get(bad, token=token)
        assert reply.status == 400 and reply.body["success"] is False, bad


async def test_events_on_open_and_claim_reach_only_the_owner(live, sample_case):
    case = await create_case(live, sample_case)
    token_a, a = await funded_user(live, "alice", 500)
    token_b, b = await funded_user(live, "bob", 0)
    sock_a, rec_a = await connect_socket(live.base_url, token=token_a)
    sock_b, rec_b = await connect_socket(live.base_url, token=token_b)
    try:
        item = (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token_a)).body["item"]
        assert (await rec_a.wait_for(f"balance:updated:{a}"))[0] == {"balance": 0}
        await rec_a.wait_for(f"inventory:updated:{a}")
        drop = (await rec_b.wait_for("drop:new"))[0]
        assert drop == {"username": "alice", "caseId": case["id"], "caseName": case["name"],
                        "item": {k: item[k] for k in ("name", "rarity", "price", "image")}}
        await live.api.post("/api/inventory/claim", {"itemId": item["id"]}, token=token_a)
        await rec_a.wait_for(f"balance:updated:{a}", count=2)
        await rec_a.wait_for(f"inventory:updated:{a}", count=2)
        assert rec_a.of(f"balance:updated:{a}")[1] == {"balance": item["price"]}
        assert rec_a.of(f"inventory:updated:{a}") == [None, None]

        # A failed open and a failed claim emit nothing.
        await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token_b)  # 409: no money
        await live.api.post("/api/inventory/claim", {"itemId": item["id"]}, token=token_a)  # 409: sold
        # Barrier: B's own top-up is delivered after anything emitted before it.
        await live.api.pay(b, 10)
        await rec_b.wait_for(f"balance:updated:{b}")
        await live.api.pay(a, 10)
        await rec_a.wait_for(f"balance:updated:{a}", count=3)
        assert [n for n in rec_b.names() if n != "drop:new"] == [f"balance:updated:{b}"]
        assert rec_a.names().count(f"inventory:updated:{a}") == 2
        assert len(rec_b.of("drop:new")) == 1
    finally:
        await sock_a.disconnect()
        await sock_b.disconnect()


async def test_public_stats_and_recent_drops(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "streamer", 1500)
    opened = []
    for _ in range(3):
        opened.append((await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"])
    await live.api.post("/api/inventory/claim", {"itemId": opened[0]["id"]}, token=token)
    stats = (await live.api.get("/api/stats/public")).body
    assert stats["success"] is True
    assert (stats["users"], stats["casesOpened"], stats["itemsSold"], stats["online"]) == (2, 3, 1, 0)
    assert [d["item"]["name"] for d in stats["recentDrops"]] == [i["name"] for i in reversed(opened)]
    assert all(d["username"] == "streamer" and d["caseName"] == case["name"] for d in stats["recentDrops"])
