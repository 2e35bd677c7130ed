"""Upgrades in the back office: GET /api/admin/stats/upgrades and its RTP alarm,
the site-wide /api/admin/stats count, a player's detail, the rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cyberhub.games.upgrades import operation as upgrades
from cyberhub.platform.ids import new_id
from tests.support.invariants import assert_money_invariants
from tests.test_economy import create_case
from tests.test_rate_limits import assert_limited
from tests.test_upgrades import FODDER, player_with_items, target_case

RULES = upgrades.Rules(house_edge=0.10, max_chance=0.80, min_chance=0.01)
SERVER_SEED = "a3c1e09f6b7d2c48e5f1a9b0c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f50"


def drawn_history(count: int, *, rig: bool = False) -> list[dict]:
    """Upgrade records as the server writes them (upgrades.record_of), each rolled by
    the server's own draw with a fixed seed pair and nonces 0..count−1. Stakes
    and targets vary so the chances range over (0.01, 0.8]. `rig` makes every
    upgrade with chance ≥ 0.3 win, whatever its roll."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    records = []
    for nonce in range(count):
        stake = 100 * (1 + nonce % 7)
        target_value = stake + 50 + (nonce * 37) % 5000
        chance = upgrades.chance_for(stake, target_value, RULES)
        if chance < RULES.min_chance:
            continue
        roll, won = upgrades.draw(SERVER_SEED, "stats-client", nonce, chance)
        if rig and chance >= 0.3:
            won = True
        op = {"_id": new_id(), "userId": "u", "username": "player", "itemIds": [new_id()], "stakeValue": stake,
              "target": {"caseId": "c", "caseVersion": 1, "itemId": "t", "name": "T", "rarity": "epic",
                         "price": target_value, "image": None},
              "chance": chance, "serverSeedHash": "h", "clientSeed": "stats-client", "nonce": nonce, "roll": roll,
              "won": won, "createdAt": at + timedelta(seconds=nonce)}
        records.append(upgrades.record_of(op))
    return records


async def upgrade_stats(live, query: str = "") -> dict:
    reply = await live.api.get(f"/api/admin/stats/upgrades{query}", token=await live.admin_token())
    assert reply.status == 200, reply
    return reply.body


async def test_no_alarm_for_2000_server_drawn_upgrades_alarm_for_a_rigged_history(live):
    fair = drawn_history(2000)
    assert len(fair) == 2000
    await live.db.upgrades.insert_many(fair)
    body = await upgrade_stats(live)
    assert body["upgrades"] == 2000 and body["wins"] == sum(r["won"] for r in fair)
    assert body["stakeValue"] == sum(r["stakeValue"] for r in fair)
    assert body["payout"] == sum(r["payout"] for r in fair)
    expected = sum(r["chance"] * r["targetValue"] for r in fair)
    assert abs(body["expectedPayout"] - expected) < 1e-6 * expected
    assert body["realizedRtp"] == body["payout"] / body["stakeValue"]
    assert body["rtpAlarm"] is False, body

    await live.db.upgrades.delete_many({})
    await live.db.upgrades.insert_many(drawn_history(2000, rig=True))
    rigged = await upgrade_stats(live)
    assert rigged["rtpAlarm"] is True, rigged
    assert rigged["realizedRtp"] > rigged["expectedRtp"]

    # The range: only the first 100 seconds' upgrades.
    first = await upgrade_stats(live, "?from=2026-11-01T00:00:00Z&to=2026-11-01T00:01:40Z")
    assert first["upgrades"] == 100
    empty = await upgrade_stats(live, "?from=2030-01-01T00:00:00Z")
    assert empty == {"success": True, "upgrades": 0, "wins": 0, "stakeValue": 0, "payout": 0,
                     "expectedPayout": 0.0, "payoutStdDev": 0.0, "realizedRtp": None, "expectedRtp": None,
                     "rtpAlarm": False}
    bad = await live.api.get("/api/admin/stats/upgrades?from=yesterday", token=await live.admin_token())
    assert bad.status == 400 and bad.body["code"] == "invalid_datetime"


async def test_admin_stats_player_detail_and_admin_only(live):
    fodder = await create_case(live, FODDER)
    token, user_id, items = await player_with_items(live, "counted", 3, fodder)
    targets = await create_case(live, target_case(1000))
    done = []
    for stake in (items[:2], items[2:]):
        reply = await live.api.post("/api/upgrades", {"itemIds": stake, "caseId": targets["id"],
                                                      "targetItemId": targets["items"][0]["id"]}, token=token)
        assert reply.status == 200, reply
        done.append(reply.body["upgrade"])
    admin = await live.admin_token()
    summary = (await live.api.get("/api/admin/stats", token=admin)).body
    assert summary["upgrades"] == 2 and summary["openings"] == 3
    detail = (await live.api.get(f"/api/admin/users/{user_id}", token=admin)).body["user"]
    won = sum(u["targetValue"] for u in done if u["won"])
    assert detail["upgrades"] == {"count": 2, "staked": 300, "won": won}
    assert detail["net"] == 300  # upgrades move no balance
    stats = await upgrade_stats(live)
    assert (stats["upgrades"], stats["stakeValue"], stats["payout"]) == (2, 300, won)
    assert (await live.api.get("/api/admin/stats/upgrades", token=token)).status == 403
    await assert_money_invariants(live.db)


async def test_upgrades_per_user_are_limited_and_nothing_changes(start_live):
    live = await start_live(rate_limit_upgrade_per_user="1/minute")
    fodder = await create_case(live, FODDER)
    token, _, items = await player_with_items(live, "hasty", 2, fodder)
    targets = await create_case(live, target_case(1000))

    def body(item: str) -> dict:
        return {"itemIds": [item], "caseId": targets["id"], "targetItemId": targets["items"][0]["id"]}

    assert (await live.api.post("/api/upgrades", body(items[0]), token=token)).status == 200
    assert_limited(await live.api.post("/api/upgrades", body(items[1]), token=token))
    assert (await live.db.inventory.find_one({"_id": items[1]}))["status"] == "owned"
    assert await live.db.upgrades.count_documents({}) == 1
