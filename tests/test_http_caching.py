"""Pre-encoded public answers: GET /api/cases and GET /api/stats/public carry an
ETag computed once per build (If-None-Match → 304), /health is formatted
directly; all keep their documented shapes. The recent-drops shortcut returns
the same drops as sorting the whole history."""

from __future__ import annotations

import random
from datetime import timedelta

from cyberhub.catalogue import public_stats as stats
from cyberhub.catalogue.models import CaseListResponse, PublicStatsResponse
from cyberhub.platform.ids import now
from cyberhub.platform.models import HealthResponse
from cyberhub.store import db as dbmod
from tests.test_economy import create_case, funded_user


async def test_catalogue_etag_and_304(live, sample_case):
    await create_case(live, sample_case)
    first = await live.api.get("/api/cases")
    etag = first.headers["ETag"]
    assert first.status == 200 and etag.startswith('"')
    assert first.headers["Cache-Control"] == "no-cache"
    CaseListResponse.model_validate(first.body)
    again = await live.api.get("/api/cases")
    assert again.headers["ETag"] == etag and again.body == first.body
    unchanged = await live.api.get("/api/cases", headers={"If-None-Match": etag})
    assert unchanged.status == 304 and unchanged.body is None
    await create_case(live, {**sample_case, "name": "Second"})
    changed = await live.api.get("/api/cases", headers={"If-None-Match": etag})
    assert changed.status == 200 and len(changed.body["cases"]) == 2
    assert changed.headers["ETag"] != etag


async def test_stats_body_etag_and_304(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "stats_reader", 1000)
    assert (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).status == 200
    live.services.stats_cache.MAX_AGE_SECONDS = 3600
    reply = await live.api.get("/api/stats/public")
    assert reply.status == 200
    parsed = PublicStatsResponse.model_validate(reply.body)
    assert parsed.model_dump(mode="json", by_alias=True) == reply.body
    assert reply.body["casesOpened"] == 1 and reply.body["online"] == 0
    assert reply.body["recentDrops"][0]["caseId"] == case["id"]
    etag = reply.headers["ETag"]
    assert (await live.api.get("/api/stats/public", headers={"If-None-Match": etag})).status == 304


async def test_health_body_has_the_documented_shape(live):
    reply = await live.api.get("/health")
    assert reply.status == 200
    assert HealthResponse.model_validate(reply.body).model_dump(mode="json", by_alias=True) == reply.body
    assert list(reply.body) == ["status", "websocket", "relay", "clients", "timestamp"]
    assert "ETag" not in reply.headers


async def test_recent_drops_shortcut_gives_the_same_drops():
    db = dbmod.connect(None, "drops").db
    rng = random.Random(7)
    start = now() - timedelta(hours=3)
    for i in range(120):
        at = start + timedelta(minutes=rng.randint(0, 200), milliseconds=rng.choice([0, 0, 5]))
        await db.openings.insert_one({"_id": f"op{i:03d}", "createdAt": at})
    everything = await db.openings.find({}).sort(stats.NEWEST_FIRST).to_list(None)
    for limit in (1, 5, 20, 200):
        expected = everything[:limit]
        assert await stats.recent_drop_docs(db, limit) == expected
        for since in (None, expected[-1]["createdAt"], start, start + timedelta(hours=2, minutes=50),
                      now() + timedelta(days=1)):
            assert await stats.recent_drop_docs(db, limit, since=since) == expected, (limit, since)
