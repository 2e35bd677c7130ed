"""Upgrades through the live server: the contract, every rule, the shared nonce
stream, verification after rotation, events, idempotent retries and races.

Stake items come from a one-item "fodder" case (every opening gives the same
item), so stakes are known; the outcome is steered, not hoped for: the test
reads the player's (still secret) server seed from the store, computes the
next roll and prices the target so the upgrade must win, or must lose."""

from __future__ import annotations

import asyncio
import math
from urllib.parse import urlencode

import pytest

from cyberhub.catalogue import fairness
from tests.support.client import connect_socket
from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case, funded_user

FODDER = {"name": "Fodder", "price": 100,
          "items": [{"name": "Sticker", "rarity": "common", "price": 100, "weight": 1}]}
EDGE, MAX_CHANCE = 0.10, 0.80


def target_case(*prices: int) -> dict:
    return {"name": f"Targets {'-'.join(map(str, prices))}", "price": 10,
            "items": [{"name": f"Prize {p}", "rarity": "epic", "price": p, "weight": 1,
                       "image": f"https://cdn.example/{p}.png"} for p in prices]}


async def player_with_items(live, name: str, count: int, fodder: dict, extra: int = 0
                            ) -> tuple[str, str, list[str]]:
    token, user_id = await funded_user(live, name, 100 * count + extra)
    ids = []
    for _ in range(count):
        reply = await live.api.post("/api/cases/open", {"caseId": fodder["id"]}, token=token)
        assert reply.status == 200, reply
        ids.append(reply.body["item"]["id"])
    return token, user_id, ids


async def next_roll(live, user_id: str) -> tuple[float, int]:
    fair = (await live.db.users.find_one({"_id": user_id}))["fair"]
    return fairness.roll(fair["serverSeed"], fair["clientSeed"], fair["nonce"]), fair["nonce"]


def price_for(stake: int, roll: float, *, win: bool) -> int:
    """A target price whose chance is above the roll (win) or below it (lose)."""
    if win:  # chance = stake·0.9/T > roll and T > stake
        price = max(stake + 1, math.floor(stake * (1 - EDGE) / roll) - 1)
        assert stake * (1 - EDGE) / price > roll
    else:  # chance = min(stake·0.9/T, max) ≤ roll, ≥ the 0.01 minimum, and T > stake (a high
        # roll would otherwise ask for a target cheaper than the stake: upgrade_target_too_cheap)
        price = max(stake + 1, math.ceil(stake * (1 - EDGE) / roll) + 1)
        chance = min(stake * (1 - EDGE) / price, MAX_CHANCE)
        assert chance <= roll and chance >= 0.01
    return price


async def steered_upgrade(live, token, user_id, item_ids, *, win: bool, headers=None):
    """Makes a target case priced so that the next roll wins (or loses), and upgrades
    to it; None when this roll cannot (the caller rotates the seed pair)."""
    stake = 100 * len(item_ids)
    roll, nonce = await next_roll(live, user_id)
    if win and roll >= min(MAX_CHANCE, stake * (1 - EDGE) / (stake + 1)):
        return None  # this roll cannot win: the caller moves the nonce on
    if not win and roll < 0.02:
        return None
    price = price_for(stake, roll, win=win)
    case = await create_case(live, target_case(price))
    body = {"itemIds": item_ids, "caseId": case["id"], "targetItemId": case["items"][0]["id"]}
    reply = await live.api.post("/api/upgrades", body, token=token, headers=headers or {})
    return reply, case, roll, nonce


async def test_won_upgrade_contract_events_nonce_and_verify_after_rotation(live):
    fodder = await create_case(live, FODDER)
    token, user_id, items = await player_with_items(live, "upgrader", 2, fodder, extra=100)
    watcher_token, _ = await funded_user(live, "watcher", 0)
    sock, rec = await connect_socket(live.base_url, token=token)
    other, other_rec = await connect_socket(live.base_url, token=watcher_token)
    try:
        stake_ids = items[:2]
        result = None
        while result is None:  # a roll too high to win: a new seed pair gives another
            result = await steered_upgrade(live, token, user_id, stake_ids, win=True)
            if result is None:
                assert (await live.api.post("/api/fair/rotate", token=token)).status == 200
        reply, case, roll, nonce = result
        assert reply.status == 200, reply
        up = reply.body["upgrade"]
        target = case["items"][0]
        chance = min(200 * (1 - EDGE) / target["price"], MAX_CHANCE)
        assert reply.body["success"] is True
        assert up["won"] is True and up["chance"] == chance and up["roll"] == roll and roll < chance
        assert up["stakeValue"] == 200 and up["targetValue"] == target["price"] and up["itemIds"] == stake_ids
        assert up["target"] == {"caseId": case["id"], "caseVersion": 1, "itemId": target["id"],
                                "name": target["name"], "rarity": "epic", "price": target["price"],
                                "image": target["image"]}
        assert up["fair"]["nonce"] == nonce
        item = up["item"]
        assert item["status"] == "owned" and item["source"] == "upgrade" and item["upgradeId"] == up["id"]
        assert (item["name"], item["price"], item["caseId"]) == (target["name"], target["price"], case["id"])

        inventory = {i["id"]: i for i in (await live.api.get("/api/inventory", token=token)).body["items"]}
        assert [inventory[i]["status"] for i in stake_ids] == ["upgraded", "upgraded"]
        assert inventory[item["id"]]["status"] == "owned"
        # Staked items cannot be sold; the won one can.
        sold = await live.api.post("/api/inventory/claim", {"itemId": stake_ids[0]}, token=token)
        assert sold.status == 409 and sold.body["code"] == "item_not_owned"

        # One nonce stream: the next opening takes the nonce after the upgrade's.
        opened = await live.api.post("/api/cases/open", {"caseId": fodder["id"]}, token=token)
        assert opened.body["fair"]["nonce"] == nonce + 1

        await rec.wait_for(f"inventory:updated:{user_id}", predicate=None)
        feed = (await other_rec.wait_for("upgrade:new"))[0]
        assert feed == {"username": "upgrader", "won": True, "chance": chance, "stakeValue": 200,
                        "item": {"name": target["name"], "rarity": "epic", "price": target["price"],
                                 "image": target["image"]}}

        rotated = (await live.api.post("/api/fair/rotate", token=token)).body["previous"]
        assert rotated["serverSeedHash"] == up["fair"]["serverSeedHash"]
        check = await live.api.get("/api/fair/verify/upgrade" + params_of(rotated, nonce, up["chance"]))
        assert check.status == 200, check
        assert check.body == {"success": True, "roll": up["roll"], "chance": up["chance"], "won": True}
        # The same check with a chance below the roll says "lost".
        lower = await live.api.get("/api/fair/verify/upgrade" + params_of(rotated, nonce, up["roll"] / 2))
        assert lower.body["won"] is False

        public = (await live.api.get("/api/stats/public")).body
        assert public["upgrades"] == 1
    finally:
        await sock.disconnect()
        await other.disconnect()
    await assert_money_invariants(live.db)


def params_of(revealed: dict, nonce: int, chance: float) -> str:
    return "?" + urlencode({"serverSeed": revealed["serverSeed"], "clientSeed": revealed["clientSeed"],
                            "nonce": nonce, "chance": repr(chance)})


async def test_lost_upgrade_consumes_the_stake_and_gives_nothing(live):
    fodder = await create_case(live, FODDER)
    token, user_id, items = await player_with_items(live, "loser", 3, fodder)
    result = None
    while result is None:
        result = await steered_upgrade(live, token, user_id, items[:1], win=False)
        if result is None:
            assert (await live.api.post("/api/fair/rotate", token=token)).status == 200
    reply, _case, roll, _nonce = result
    assert reply.status == 200, reply
    up = reply.body["upgrade"]
    assert up["won"] is False and up["item"] is None and up["roll"] == roll >= up["chance"]
    assert (await live.db.inventory.find_one({"_id": items[0]}))["status"] == "upgraded"
    assert await live.db.inventory.count_documents({"userId": user_id, "source": "upgrade"}) == 0
    await assert_money_invariants(live.db)


async def _unchanged(live, user_id: str, items: list[str], nonce: int) -> None:
    """Nothing consumed: items owned, nonce where it was, no operation or upgrade left."""
    assert [d["status"] for d in await live.db.inventory.find({"_id": {"$in": items}}).to_list(None)] == \
        ["owned"] * len(items)
    assert (await live.db.users.find_one({"_id": user_id}))["fair"]["nonce"] == nonce
    assert await live.db.operations.count_documents({"kind": "upgrade"}) == 0
    assert await live.db.upgrades.count_documents({}) == 0


async def test_every_refusal_has_its_status_and_consumes_nothing(live):
    fodder = await create_case(live, FODDER)
    token, user_id, items = await player_with_items(live, "picky", 3, fodder)
    _, _, other_items = await player_with_items(live, "neighbour", 1, fodder)
    targets = await create_case(live, target_case(200, 150, 100_000, 1000))
    by_price = {i["price"]: i["id"] for i in targets["items"]}
    gone = await create_case(live, target_case(5000))
    admin = await live.admin_token()
    assert (await live.api.call("DELETE", f"/api/admin/cases/{gone['id']}", token=admin)).status == 200
    sold = items.pop()
    assert (await live.api.post("/api/inventory/claim", {"itemId": sold}, token=token)).status == 200
    nonce = (await live.db.users.find_one({"_id": user_id}))["fair"]["nonce"]

    def body(ids, price=1000, case=targets):
        return {"itemIds": ids, "caseId": case["id"], "targetItemId": by_price.get(price, case["items"][0]["id"])}

    cases = [
        (body(items, 200), 400, "upgrade_target_too_cheap"),  # stake 200, target 200: not worth more
        (body(items[:1], 100_000), 400, "upgrade_chance_too_low"),  # 100·0.9/100000 < 0.01
        (body([items[0], items[0]]), 400, "duplicate_items"),
        (body([items[0], "no-such-item"]), 404, "item_not_found"),
        (body([items[0], other_items[0]]), 404, "item_not_found"),  # someone else's
        (body([items[0], sold]), 409, "item_not_owned"),
        ({**body(items), "targetItemId": "nope"}, 404, "target_not_found"),
        ({**body(items), "caseId": "nope"}, 404, "case_not_found"),
        (body(items, case=gone), 404, "case_not_found"),  # deleted case
        (body([]), 400, "validation_error"),
        (body([f"i{n}" for n in range(11)]), 400, "validation_error"),
    ]
    for payload, status, code in cases:
        reply = await live.api.post("/api/upgrades", payload, token=token)
        assert (reply.status, reply.body.get("code")) == (status, code), (payload, reply)
        assert reply.body["success"] is False and reply.body["error"]
    assert (await live.api.post("/api/upgrades", body(items), token=None)).status == 401
    await _unchanged(live, user_id, items, nonce)
    # The rules at their edges: 150 > 100 and 100·0.9/150 = 0.6 is allowed.
    ok = await live.api.post("/api/upgrades", body(items[:1], 150), token=token)
    assert ok.status == 200 and ok.body["upgrade"]["chance"] == 100 * 0.9 / 150, ok
    await assert_money_invariants(live.db)


@pytest.mark.parametrize("settings_overrides", [{"upgrade_max_chance": 0.5, "upgrade_house_edge": 0.2}])
async def test_chance_is_capped_and_settings_apply(live):
    fodder = await create_case(live, FODDER)
    token, _, items = await player_with_items(live, "capped", 2, fodder)
    targets = await create_case(live, target_case(201, 2000))
    reply = await live.api.post("/api/upgrades", {"itemIds": items, "caseId": targets["id"],
                                                  "targetItemId": targets["items"][0]["id"]}, token=token)
    assert reply.status == 200 and reply.body["upgrade"]["chance"] == 0.5  # 200·0.8/201 capped at 0.5


async def test_upgrade_new_and_drop_new_share_one_live_feed_window(start_live):
    """LIVE_FEED_MAX_PER_SECOND caps the public feed as a whole: with a cap of 1
    and the feed's clock stopped, a drop:new takes the window, so the next
    upgrade:new waits (not a second broadcast in that second) and goes out
    when the window moves on."""
    live = await start_live(live_feed_max_per_second=1)
    now = [1000.0]
    live.services.notifier.feed.clock = lambda: now[0]
    viewer, seen = await connect_socket(live.base_url)
    try:
        fodder = await create_case(live, FODDER)
        token, _, items = await player_with_items(live, "feedsharer", 1, fodder)  # its drop:new takes the slot
        targets = await create_case(live, target_case(1000))
        reply = await live.api.post("/api/upgrades", {"itemIds": items, "caseId": targets["id"],
                                                      "targetItemId": targets["items"][0]["id"]}, token=token)
        assert reply.status == 200, reply
        await create_case(live, target_case(3000))  # a broadcast after the upgrade's, in emit order
        await seen.wait_for("cases:updated", count=3)
        assert len(seen.of("drop:new")) == 1
        assert seen.of("upgrade:new") == [], "upgrade:new went out in a window drop:new had filled"

        now[0] += 1.0  # the window moves on: the waiting upgrade takes the free slot
        feed = (await seen.wait_for("upgrade:new"))[0]
        assert feed["username"] == "feedsharer" and feed["item"]["price"] == 1000
        assert len(seen.of("drop:new")) == 1
    finally:
        await viewer.disconnect()


async def test_idempotent_retry_returns_the_first_result_once(live):
    fodder = await create_case(live, FODDER)
    token, user_id, items = await player_with_items(live, "retrier", 2, fodder)
    targets = await create_case(live, target_case(1000))
    body = {"itemIds": items, "caseId": targets["id"], "targetItemId": targets["items"][0]["id"]}
    headers = {"Idempotency-Key": "upgrade-1"}
    replies = await asyncio.gather(*[live.api.post("/api/upgrades", body, token=token, headers=headers)
                                     for _ in range(10)])
    assert {r.status for r in replies} == {200}, replies
    assert len({str(r.body) for r in replies}) == 1
    assert await live.db.upgrades.count_documents({}) == 1
    assert (await live.db.users.find_one({"_id": user_id}))["fair"]["nonce"] == 3  # 2 openings + 1 upgrade
    reused = await live.api.post("/api/upgrades", {**body, "itemIds": items[:1]}, token=token, headers=headers)
    assert reused.status == 409 and reused.body["code"] == "idempotency_key_reused"
    await assert_money_invariants(live.db)


async def test_one_item_staked_by_many_upgrades_at_once_is_used_once(live):
    fodder = await create_case(live, FODDER)
    token, _, items = await player_with_items(live, "greedy", 3, fodder)
    targets = await create_case(live, target_case(1000, 2000))
    # Overlapping stakes: every request wants items[0].
    stakes = [[items[0]], [items[0], items[1]], [items[0], items[2]], [items[0], items[1], items[2]]] * 5
    replies = await asyncio.gather(*[
        live.api.post("/api/upgrades", {"itemIds": s, "caseId": targets["id"],
                                        "targetItemId": targets["items"][n % 2]["id"]}, token=token)
        for n, s in enumerate(stakes)])
    assert all(r.status in (200, 409) for r in replies), replies
    assert all(r.body["code"] == "item_not_owned" for r in replies if r.status == 409)
    wins = [r for r in replies if r.status == 200]
    assert len(wins) >= 1
    used = [i for r in wins for i in r.body["upgrade"]["itemIds"]]
    assert len(used) == len(set(used)), "an item staked twice"
    nonces = sorted(r.body["upgrade"]["fair"]["nonce"] for r in wins)
    assert nonces == list(range(3, 3 + len(wins))), "nonce skipped or reused"
    await assert_money_invariants(live.db)


async def test_items_are_staked_in_one_order_whatever_the_request_order(live):
    """Two upgrades staking the same items in opposite order must take them in
    the same order, or on a real MongoDB each can hold half of the other's
    items and both give up, again and again. The answer keeps the request's order."""
    fodder = await create_case(live, FODDER)
    token, _, items = await player_with_items(live, "orderly", 3, fodder)
    targets = await create_case(live, target_case(1000))
    asked = sorted(items, reverse=True)
    live.chaos.arm()
    reply = await live.api.post("/api/upgrades", {"itemIds": asked, "caseId": targets["id"],
                                                  "targetItemId": targets["items"][0]["id"]}, token=token)
    stakes = [args[0] for name, method, args in live.chaos.write_args if (name, method) == ("inventory", "update_many")]
    live.chaos.disarm()
    assert reply.status == 200, reply
    assert reply.body["upgrade"]["itemIds"] == asked
    assert stakes and stakes[0]["_id"]["$in"] == sorted(items), stakes


async def test_staking_and_selling_one_item_at_once_uses_it_once(live):
    fodder = await create_case(live, FODDER)
    token, user_id, items = await player_with_items(live, "doubler", 12, fodder)
    targets = await create_case(live, target_case(1000))
    calls = []
    for item in items:
        calls.append(live.api.post("/api/upgrades", {"itemIds": [item], "caseId": targets["id"],
                                                     "targetItemId": targets["items"][0]["id"]}, token=token))
        calls.append(live.api.post("/api/inventory/claim", {"itemId": item}, token=token))
    replies = await asyncio.gather(*calls)
    for upgrade, sale in zip(replies[::2], replies[1::2], strict=True):
        assert sorted((upgrade.status, sale.status)) == [200, 409], (upgrade, sale)
    sales = [r for r in replies[1::2] if r.status == 200]
    balance = (await live.db.users.find_one({"_id": user_id}))["balance"]
    assert balance == 100 * len(sales)
    assert await live.db.upgrades.count_documents({}) == len(items) - len(sales)
    await assert_money_invariants(live.db)


async def test_verify_refuses_bad_input_and_the_endpoints_are_in_the_openapi_document(live):
    seed = "a3c1e09f6b7d2c48e5f1a9b0c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f50"
    good = {"serverSeed": seed, "clientSeed": "lucky-client", "nonce": 0, "chance": "0.5"}
    reply = await live.api.get("/api/fair/verify/upgrade?" + urlencode(good))
    # The README's worked example: nonce 0 rolls 0.11949074…
    assert reply.status == 200 and reply.body["won"] is True and abs(reply.body["roll"] - 0.11949074) < 1e-8
    for field, value in (("chance", "nan"), ("chance", "inf"), ("chance", "1.5"), ("chance", "-0.1"),
                         ("chance", ""), ("nonce", "-1"), ("serverSeed", "xyz"), ("clientSeed", "")):
        bad = await live.api.get("/api/fair/verify/upgrade?" + urlencode({**good, field: value}))
        assert bad.status == 400 and bad.body["code"] == "validation_error", (field, value, bad)
    missing = await live.api.get("/api/fair/verify/upgrade?" + urlencode({k: v for k, v in good.items()
                                                                          if k != "chance"}))
    assert missing.status == 400
    paths = (await live.api.get("/api/openapi.json")).body["paths"]
    assert "post" in paths["/api/upgrades"] and "get" in paths["/api/fair/verify/upgrade"]
    assert "get" in paths["/api/admin/stats/upgrades"]  # so schemathesis fuzzes all three
