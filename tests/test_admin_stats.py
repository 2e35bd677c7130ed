"""The back office's numbers: the ledger summary, per-case RTP with its alarm,
and time series — against a live server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from cyberhub.admin import stats as admin_stats
from cyberhub.catalogue import fairness
from cyberhub.platform.ids import new_id, now
from tests.test_economy import create_case, funded_user

ODDS = {"name": "Odds", "price": 500,
        "items": [{"name": "Common", "rarity": "common", "price": 100, "weight": 70},
                  {"name": "Rare", "rarity": "rare", "price": 800, "weight": 25},
                  {"name": "Legend", "rarity": "legendary", "price": 5000, "weight": 5}]}


async def stats(live, path: str) -> dict:
    reply = await live.api.get(path, token=await live.admin_token())
    assert reply.status == 200, reply
    return reply.body


async def test_summary_and_timeseries_from_the_ledger(live):
    case = await create_case(live, ODDS)
    admin = await live.admin_token()
    token, user_id = await funded_user(live, "player", 3000)
    _, other = await funded_user(live, "other", 700)
    items = [(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"]
             for _ in range(3)]
    assert (await live.api.post("/api/inventory/claim", {"itemId": items[0]["id"]}, token=token)).status == 200
    assert (await live.api.post(f"/api/admin/users/{other}/adjustments", {"amount": -200, "reason": "fee"},
                                token=admin)).status == 200
    assert (await live.api.pay(user_id, 400, payment_id="later")).status == 200
    assert (await live.api.pay(user_id, 400, payment_id="later", status="refunded")).status == 200

    body = await stats(live, "/api/admin/stats")
    expected = {"deposits": 4100, "reversals": 400, "openings": 3, "openingRevenue": 1500, "itemsSold": 1,
                "salesPayout": items[0]["price"], "adjustments": -200, "net": 1500 - items[0]["price"],
                "activePlayers": 1}
    assert {k: body[k] for k in expected} == expected
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    empty = await stats(live, f"/api/admin/stats?from={future}")
    assert empty["deposits"] == 0 and empty["openings"] == 0 and empty["activePlayers"] == 0
    past = quote((datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.123+00:00"))
    assert (await stats(live, f"/api/admin/stats?from={past}&to={future}"))["openings"] == 3

    for bucket in ("hour", "day"):
        series = (await stats(live, f"/api/admin/stats/timeseries?bucket={bucket}"))["series"]
        assert 1 <= len(series) <= 2  # a run across an hour's end may fill two
        for key in expected:
            if key != "activePlayers":
                assert sum(b[key] for b in series) == expected[key], (bucket, key)
        start = datetime.fromisoformat(series[0]["start"])
        assert start.minute == 0 and (bucket == "hour" or start.hour == 0)

    admin_get = live.api.get
    for bad in ("/api/admin/stats?from=yesterday", "/api/admin/stats?to=2026-11-21",
                "/api/admin/stats/cases?from=2026-13-01T00:00:00Z", "/api/admin/stats/timeseries?bucket=week"):
        reply = await admin_get(bad, token=admin)
        assert reply.status == 400, (bad, reply)
    rolled = await admin_get("/api/admin/stats?from=2026-02-31T00:00:00Z&to=9999-12-31T23:59:59-23:59", token=admin)
    assert rolled.status == 200, rolled


def test_datetime_parameters_every_pattern_match_is_answered():
    parse = admin_stats.parse_datetime
    assert parse("2026-02-31T00:00:00Z", "from") == datetime(2026, 3, 3, tzinfo=UTC)
    assert parse("2026-11-21T10:30:00.5+02:00", "from") == datetime(2026, 11, 21, 8, 30, 0, 500000, tzinfo=UTC)
    assert parse("9999-12-31T23:59:59-23:59", "to") == datetime.max.replace(tzinfo=UTC)
    assert parse("1000-01-01T00:00:00+23:59", "to") == datetime(999, 12, 31, 0, 1, tzinfo=UTC)
    assert parse("", "to") is None
    assert re.fullmatch(admin_stats.DATETIME_PATTERN, "2026-11-21T00:00:00Z")
    assert not re.fullmatch(admin_stats.DATETIME_PATTERN, "2026-11-21")


def _opening(case: dict, version: int, item: dict, at: datetime) -> dict:
    return {"_id": new_id(), "userId": "crafted", "username": "crafted", "caseId": case["id"],
            "caseName": case["name"], "caseVersion": version, "price": case["price"], "item": item,
            "itemId": new_id(), "createdAt": at}


async def test_rtp_alarm_for_a_case_paying_more_than_its_odds_not_for_a_fair_one(live):
    fair = await create_case(live, ODDS)
    rigged = await create_case(live, {**ODDS, "name": "Rigged"})
    stored = {c["_id"]: c for c in await live.db.cases.find({}).to_list(None)}
    at = now()
    docs = []
    # Fairly drawn: the server's own draw, fixed seeds, 2,000 nonces.
    weights = [i["weight"] for i in stored[fair["id"]]["items"]]
    for nonce in range(2000):
        drawn = fairness.draw("s" * 64, "client", nonce, weights)
        docs.append(_opening(fair, 1, stored[fair["id"]]["items"][drawn.index], at))
    # Rigged: the legendary (5 % by the odds) comes out a third of the time.
    items = stored[rigged["id"]]["items"]
    docs += [_opening(rigged, 1, items[2] if n % 3 == 0 else items[0], at) for n in range(300)]
    await live.db.openings.insert_many(docs)

    cases = {c["caseId"]: c for c in (await stats(live, "/api/admin/stats/cases"))["cases"]}
    assert cases[fair["id"]]["openings"] == 2000 and cases[fair["id"]]["rtpAlarm"] is False, cases[fair["id"]]
    assert abs(cases[fair["id"]]["expectedRtp"] - 520 / 500) < 1e-9
    assert abs(cases[fair["id"]]["realizedRtp"] - cases[fair["id"]]["expectedRtp"]) < 0.1
    bad = cases[rigged["id"]]
    assert bad["rtpAlarm"] is True and bad["name"] == "Rigged" and bad["payout"] == 100 * 5000 + 200 * 100, bad
    assert bad["revenue"] == 300 * 500 and bad["realizedRtp"] > bad["expectedRtp"]


async def test_each_version_is_judged_by_its_own_odds(live):
    """Openings of a version that pays the legendary often are fair against
    that version's odds, even though the case's first version would not allow them."""
    token = await live.admin_token()
    case = await create_case(live, ODDS)
    generous = {**ODDS, "items": [{**ODDS["items"][0], "weight": 1}, {**ODDS["items"][2], "weight": 1}]}
    assert (await live.api.call("PUT", f"/api/admin/cases/{case['id']}", generous, token=token)).status == 200
    v1 = (await live.db.case_versions.find_one({"_id": f"{case['id']}:1"}))["items"]
    v2 = (await live.db.case_versions.find_one({"_id": f"{case['id']}:2"}))["items"]
    at = now()
    docs = [_opening(case, 1, v1[0] if n < 70 else v1[1] if n < 95 else v1[2], at) for n in range(100)]
    docs += [_opening(case, 2, v2[n % 2], at) for n in range(100)]  # half legendary: what v2 promises
    await live.db.openings.insert_many(docs)
    [row] = (await stats(live, "/api/admin/stats/cases"))["cases"]
    assert row["openings"] == 200 and row["rtpAlarm"] is False, row
    assert row["expectedPayout"] == 100 * 520 + 100 * 2550
    # The same v2 openings recorded as v1 are far outside v1's odds.
    await live.db.openings.update_many({"caseVersion": 2}, {"$set": {"caseVersion": 1}})
    [row] = (await stats(live, "/api/admin/stats/cases"))["cases"]
    assert row["rtpAlarm"] is True, row
