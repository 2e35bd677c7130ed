"""Abuse limits: 429 with Retry-After and the error envelope, nothing changed,
and other users / IPs unaffected."""

from __future__ import annotations

import asyncio

from tests.support.client import connect_socket
from tests.test_economy import create_case, funded_user


def assert_limited(reply) -> None:
    assert reply.status == 429, reply
    assert reply.body["success"] is False and reply.body["code"] == "rate_limited"
    assert 1 <= int(reply.headers["Retry-After"]) <= 60


async def test_registrations_per_ip(start_live):
    live = await start_live(rate_limit_auth_per_ip="3/minute")
    for n in range(3):
        await live.api.register(f"burst_{n}")
    reply = await live.api.post("/api/auth/register", {"username": "burst_4", "password": "long enough"})
    assert_limited(reply)
    assert await live.db.users.count_documents({"usernameLower": "burst_4"}) == 0


async def test_failed_logins_lock_the_username_not_others(start_live):
    live = await start_live(rate_limit_login_failures="2/minute")
    await live.api.register("victim", "the real password")
    await live.api.register("bystander", "another password")
    for _ in range(2):
        wrong = await live.api.post("/api/auth/login", {"username": "victim", "password": "guess guess"})
        assert wrong.status == 401
    # From that IP the account is locked for the window, even with the right
    # password (the guesser cannot tell).
    assert_limited(await live.api.post("/api/auth/login", {"username": "VICTIM", "password": "the real password"}))
    assert (await live.api.post("/api/auth/login", {"username": "bystander", "password": "another password"})
            ).status == 200
    # Successful logins do not count towards the limit.
    for _ in range(3):
        assert (await live.api.post("/api/auth/login", {"username": "bystander", "password": "another password"})
                ).status == 200


async def test_opens_per_user_and_nothing_changes_when_limited(start_live, sample_case):
    live = await start_live(rate_limit_open_per_user="2/minute")
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "spinner", 5000)
    other, _ = await funded_user(live, "calm", 5000)
    for _ in range(2):
        assert (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).status == 200
    assert_limited(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token))
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 4000
    assert await live.db.inventory.count_documents({"userId": user_id}) == 2
    assert (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=other)).status == 200
    metrics = (await live.api.get("/metrics")).body
    assert 'cyberhub_rate_limited_total{rule="open_per_user"} 1.0' in metrics


async def test_claims_seed_changes_and_verify_are_limited(start_live, sample_case):
    live = await start_live(rate_limit_claim_per_user="1/minute", rate_limit_fair_per_user="1/minute",
                            rate_limit_verify_per_ip="1/minute")
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "limited", 1000)
    items = [(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"]
             for _ in range(2)]
    assert (await live.api.post("/api/inventory/claim", {"itemId": items[0]["id"]}, token=token)).status == 200
    assert_limited(await live.api.post("/api/inventory/claim", {"itemId": items[1]["id"]}, token=token))
    assert (await live.db.inventory.find_one({"_id": items[1]["id"]}))["status"] == "owned"

    assert (await live.api.post("/api/fair/rotate", token=token)).status == 200
    assert_limited(await live.api.post("/api/fair/client-seed", {"clientSeed": "abc"}, token=token))

    query = f"/api/fair/verify?serverSeed={'a' * 64}&clientSeed=c&nonce=0&caseId={case['id']}&version=1"
    assert (await live.api.get(query)).status == 200
    assert_limited(await live.api.get(query))


async def test_client_ip_from_proxy_headers_only_when_trusted(start_live):
    """Behind a load balancer every request comes from its IP; with
    TRUST_PROXY_HEADERS the limit applies to each forwarded client instead."""
    direct = await start_live(rate_limit_auth_per_ip="1/minute")
    await direct.api.register("direct_1")
    spoofed = await direct.api.post("/api/auth/register", {"username": "direct_2", "password": "long enough"},
                                    headers={"X-Forwarded-For": "203.0.113.9"})
    assert_limited(spoofed)  # not trusted: the header cannot dodge the limit

    proxied = await start_live(rate_limit_auth_per_ip="1/minute", trust_proxy_headers=True)
    for n, ip in enumerate(("203.0.113.1", "203.0.113.2")):
        reply = await proxied.api.post("/api/auth/register", {"username": f"proxied_{n}", "password": "long enough"},
                                       headers={"X-Forwarded-For": ip})
        assert reply.status == 201
    again = await proxied.api.post("/api/auth/register", {"username": "proxied_9", "password": "long enough"},
                                   headers={"X-Forwarded-For": "203.0.113.1"})
    assert_limited(again)


async def test_a_guesser_locks_only_themselves_out(start_live):
    """Usernames are public (drop feed): failures from one IP must not lock the
    owner out when they log in from elsewhere."""
    live = await start_live(rate_limit_login_failures="2/minute", trust_proxy_headers=True)
    await live.api.register("famous", "the real password")
    attacker = {"X-Forwarded-For": "198.51.100.66"}
    for _ in range(2):
        reply = await live.api.post("/api/auth/login", {"username": "famous", "password": "guess guess"},
                                    headers=attacker)
        assert reply.status == 401
    assert_limited(await live.api.post("/api/auth/login", {"username": "famous", "password": "guess guess"},
                                       headers=attacker))
    owner = await live.api.post("/api/auth/login", {"username": "famous", "password": "the real password"},
                                headers={"X-Forwarded-For": "203.0.113.7"})
    assert owner.status == 200


async def test_guessing_spread_over_many_ips_is_capped_per_account(start_live):
    """Past the per-account limit every further guess is refused (429), from a
    new address too, after at most one try from that address."""
    live = await start_live(rate_limit_login_failures_per_account="3/minute", trust_proxy_headers=True)
    await live.api.register("target2", "the real password")
    for n in range(3):
        reply = await live.api.post("/api/auth/login", {"username": "target2", "password": "guess guess"},
                                    headers={"X-Forwarded-For": f"198.51.100.{n}"})
        assert reply.status == 401
    fresh = {"X-Forwarded-For": "198.51.100.99"}
    # Under attack, a new address gets one attempt: this wrong guess is checked (401)...
    reply = await live.api.post("/api/auth/login", {"username": "target2", "password": "guess guess"}, headers=fresh)
    assert reply.status == 401, reply
    # ...and every later one from it is refused before the password is checked, the right one too.
    assert_limited(await live.api.post("/api/auth/login", {"username": "target2", "password": "the real password"},
                                       headers=fresh))
    # So is an address that failed before the attack began.
    assert_limited(await live.api.post("/api/auth/login", {"username": "target2", "password": "the real password"},
                                       headers={"X-Forwarded-For": "198.51.100.0"}))
    # The owner, from an address that never failed, still logs in.
    owner = await live.api.post("/api/auth/login", {"username": "target2", "password": "the real password"},
                                headers={"X-Forwarded-For": "203.0.113.50"})
    assert owner.status == 200, owner


async def test_concurrent_guesses_from_one_address_under_attack_get_one_check(start_live):
    live = await start_live(rate_limit_login_failures_per_account="2/minute", trust_proxy_headers=True)
    await live.api.register("target3", "the real password")
    for n in range(2):
        await live.api.post("/api/auth/login", {"username": "target3", "password": "guess guess"},
                            headers={"X-Forwarded-For": f"198.51.100.{n}"})
    fresh = {"X-Forwarded-For": "198.51.100.77"}
    replies = await asyncio.gather(*[
        live.api.post("/api/auth/login", {"username": "target3", "password": f"guess {i:02d} guess"}, headers=fresh)
        for i in range(10)])
    assert sorted(r.status for r in replies) == [401] + [429] * 9, replies


async def test_a_suspended_account_is_no_password_oracle_for_a_throttled_address(start_live):
    """The right password of a suspended account gets the same 429 as a wrong
    one from an address that is throttled."""
    live = await start_live(rate_limit_login_failures="2/minute", trust_proxy_headers=True)
    _, user = await live.api.register("banned", "the real password")
    await live.db.users.update_one({"_id": user["id"]}, {"$set": {"suspended": {"reason": "test", "by": "x"}}})
    attacker = {"X-Forwarded-For": "198.51.100.66"}
    for _ in range(2):
        assert (await live.api.post("/api/auth/login", {"username": "banned", "password": "guess guess"},
                                    headers=attacker)).status == 401
    assert_limited(await live.api.post("/api/auth/login", {"username": "banned", "password": "the real password"},
                                       headers=attacker))
    elsewhere = await live.api.post("/api/auth/login", {"username": "banned", "password": "the real password"},
                                    headers={"X-Forwarded-For": "203.0.113.9"})
    assert elsewhere.status == 403 and elsewhere.body["code"] == "account_suspended"


async def test_naming_a_player_cannot_lock_them_out(start_live):
    """100 failures from 21 addresses used to lock the account for everyone for
    an hour. Now the owner, from an address that never failed, still logs in."""
    live = await start_live(rate_limit_login_failures="5/minute",
                            rate_limit_login_failures_per_account="100/hour", trust_proxy_headers=True)
    await live.api.register("streamer", "the real password")
    for n in range(21):
        for _ in range(5):
            reply = await live.api.post("/api/auth/login", {"username": "streamer", "password": "guess guess"},
                                        headers={"X-Forwarded-For": f"198.51.100.{n}"})
            assert reply.status in (401, 429), reply
    assert not await live.services.limiter.allows("login_failures_per_account", "streamer"), "under attack"
    owner = await live.api.post("/api/auth/login", {"username": "streamer", "password": "the real password"},
                                headers={"X-Forwarded-For": "203.0.113.7"})
    assert owner.status == 200, owner
    assert (await live.api.get("/api/profile", token=owner.body["token"])).status == 200


async def test_stats_are_computed_at_most_once_per_window(live, sample_case):
    """Public and polled by every visitor: served from a per-process cache. The
    window is widened here so the check cannot depend on timing."""
    from tests.test_economy import create_case, funded_user

    live.services.stats_cache.MAX_AGE_SECONDS = 3600
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "stat_user", 500)
    first = (await live.api.get("/api/stats/public")).body
    await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    second = (await live.api.get("/api/stats/public")).body
    assert second["casesOpened"] == first["casesOpened"] == 0, "served from the cache"
    live.services.stats_cache.MAX_AGE_SECONDS = 0
    assert (await live.api.get("/api/stats/public")).body["casesOpened"] == 1


def limited_counts(metrics: str) -> dict[str, float]:
    """cyberhub_rate_limited_total by its one label, `rule`."""
    counts = {}
    for line in metrics.splitlines():
        if line.startswith("cyberhub_rate_limited_total{"):
            labels, value = line.removeprefix("cyberhub_rate_limited_total{").split("} ")
            assert labels.startswith('rule="') and labels.count("=") == 1, line
            counts[labels[len('rule="'):-1]] = float(value)
    return counts


async def test_every_refusal_by_every_limit_is_counted_by_rule(start_live):
    """Login lockouts, forged-webhook refusals and socket event refusals count
    too (they used to be missed: only the handlers' declared limits counted,
    labelled by handler class), each under its rule's name."""
    live = await start_live(rate_limit_login_failures="1/minute", rate_limit_webhook_forged_per_ip="1/minute",
                            rate_limit_socket_events="1/minute")
    token, user = await live.api.register("counted", "the real password")
    assert (await live.api.post("/api/auth/login", {"username": "counted", "password": "wrong guess"})).status == 401
    for _ in range(2):
        assert_limited(await live.api.post("/api/auth/login", {"username": "counted", "password": "wrong guess"}))
    for expected in (401, 429, 429, 429):
        forged = await live.api.post("/api/payment/callback", {"paymentId": "p"}, headers={"X-Signature": "t=1,v1=00"})
        assert forged.status == expected, forged
    client, _ = await connect_socket(live.base_url, token=token)
    try:
        acks = [await client.call("user:identify", {"userId": user["id"]}) for _ in range(2)]
        assert acks[0] == {"success": True} and acks[1]["code"] == "rate_limited"
    finally:
        await client.disconnect()
    metrics = (await live.api.get("/metrics")).body
    assert limited_counts(metrics) == {"login_failures": 2, "webhook_forged_per_ip": 3, "socket_events": 1}
    # The limits' store answered every check (no Redis here to fail).
    assert "cyberhub_rate_limit_fallback_total 0.0" in metrics
