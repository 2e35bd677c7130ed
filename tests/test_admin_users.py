"""The back office's players: search, detail with ledger sums, ledger pages,
suspension (tokens, login, sockets), and wallet adjustments — against a live
server."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import socketio

from cyberhub.accounts import users as accounts
from tests.support.client import WAIT, connect_socket, until_relayed
from tests.support.invariants import assert_money_invariants
from tests.support.process import start_redis
from tests.test_economy import create_case, funded_user
from tests.test_sockets import barrier, refusal

CASE = {"name": "Plain", "price": 300,
        "items": [{"name": "Shard", "rarity": "common", "price": 120, "weight": 3},
                  {"name": "Crown", "rarity": "epic", "price": 900, "weight": 1}]}


async def admin(live) -> str:
    return await live.admin_token()


# --- players ----------------------------------------------------------------------------------


async def test_search_sort_and_page_players(live):
    token = await admin(live)
    ids = {}
    for i, name in enumerate(["Alpha_one", "alpha_two", "alphabet", "beta"]):
        _, ids[name] = await funded_user(live, name, (i + 1) * 100)
    found = await live.api.get("/api/admin/users?q=ALPHA&sort=balance", token=token)
    assert found.status == 200, found
    assert [u["username"] for u in found.body["users"]] == ["alphabet", "alpha_two", "Alpha_one"]
    assert found.body["nextCursor"] is None
    first = found.body["users"][0]
    assert set(first) >= {"id", "username", "role", "balance", "suspended", "createdAt", "lastActiveAt"}
    assert first["balance"] == 300 and first["suspended"] is None and first["role"] == "user"
    by_id = await live.api.get(f"/api/admin/users?q={ids['beta']}", token=token)
    assert [u["username"] for u in by_id.body["users"]] == ["beta"]
    # Pages of 2 in every sort reach everyone once (4 players + the configured admin).
    for sort in ("balance", "created", "active"):
        seen, cursor = [], ""
        while True:
            page = await live.api.get(f"/api/admin/users?sort={sort}&limit=2&cursor={cursor}", token=token)
            assert page.status == 200, page
            seen += [u["id"] for u in page.body["users"]]
            cursor = page.body["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 5, (sort, seen)
    balances = [u["balance"] for u in (await live.api.get("/api/admin/users?sort=balance", token=token)).body["users"]]
    assert balances == sorted(balances, reverse=True)
    for bad in ("q=a-b", "sort=name", "limit=0", "cursor=nope"):
        reply = await live.api.get(f"/api/admin/users?{bad}", token=token)
        assert reply.status == 400, (bad, reply)


async def test_player_detail_sums_the_ledger_and_pages_it(live):
    token = await admin(live)
    case = await create_case(live, CASE)
    player_token, user_id = await funded_user(live, "spender", 1000)
    opened = [(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=player_token)).body
              for _ in range(3)]
    sold = await live.api.post("/api/inventory/claim", {"itemId": opened[0]["item"]["id"]}, token=player_token)
    assert sold.status == 200
    adjusted = await live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": -50, "reason": "fee"},
                                   token=token)
    assert adjusted.status == 200, adjusted
    detail = await live.api.get(f"/api/admin/users/{user_id}", token=token)
    assert detail.status == 200, detail
    user = detail.body["user"]
    price = opened[0]["item"]["price"]
    assert user["deposited"] == 1000 and user["spent"] == 900 and user["sold"] == price
    assert user["adjusted"] == -50 and user["reversed"] == 0 and user["net"] == 900 - price
    assert user["balance"] == 1000 - 900 + price - 50
    assert user["net"] == user["deposited"] - user["reversed"] + user["adjusted"] - user["balance"]

    entries, cursor = [], ""
    while True:
        page = await live.api.get(f"/api/admin/users/{user_id}/ledger?limit=2&cursor={cursor}", token=token)
        assert page.status == 200, page
        entries += page.body["entries"]
        cursor = page.body["nextCursor"]
        if cursor is None:
            break
    assert [e["reason"] for e in entries] == ["admin_adjustment", "item_sale", "case_open", "case_open",
                                              "case_open", "payment"]
    assert entries[0]["adminId"] and entries[0]["text"] == "fee" and entries[0]["delta"] == -50
    assert sum(e["delta"] for e in entries) == user["balance"]
    assert (await live.api.get("/api/admin/users/nobody", token=token)).status == 404
    assert (await live.api.get("/api/admin/users/nobody/ledger", token=token)).status == 404
    await assert_money_invariants(live.db)


async def test_players_are_admin_only(live):
    token, user_id = await funded_user(live, "curious", 0)
    for method, path in (("GET", "/api/admin/users"), ("GET", f"/api/admin/users/{user_id}"),
                         ("POST", f"/api/admin/users/{user_id}/suspend")):
        reply = await live.api.call(method, path, {"reason": "x"}, token=token)
        assert reply.status == 403 and reply.body["code"] == "admin_required", reply
    assert (await live.api.get("/api/admin/users")).status == 401


async def test_last_active_is_refreshed_rarely(live):
    token, user_id = await funded_user(live, "lurker", 0)
    stamp = (await live.db.users.find_one({"_id": user_id}))["lastActiveAt"]
    assert (await live.api.get("/api/profile", token=token)).status == 200
    assert (await live.db.users.find_one({"_id": user_id}))["lastActiveAt"] == stamp, "no write per request"
    old = stamp - accounts.ACTIVE_REFRESH * 2
    await live.db.users.update_one({"_id": user_id}, {"$set": {"lastActiveAt": old}})
    assert (await live.api.get("/api/profile", token=token)).status == 200
    assert (await live.db.users.find_one({"_id": user_id}))["lastActiveAt"] > old


# --- suspension -------------------------------------------------------------------------------


async def test_suspension_stops_tokens_login_and_sockets_then_restore(live):
    token = await admin(live)
    case = await create_case(live, CASE)
    player_token, user_id = await funded_user(live, "cheater", 1000)
    opened = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=player_token)
    assert opened.status == 200
    client, _rec = await connect_socket(live.base_url, token=player_token)
    gone = asyncio.Event()
    client.on("disconnect", lambda *a: gone.set())

    reply = await live.api.post(f"/api/admin/users/{user_id}/suspend", {"reason": "bonus abuse"}, token=token)
    assert reply.status == 200, reply
    assert reply.body["user"]["suspended"]["reason"] == "bonus abuse"
    await asyncio.wait_for(gone.wait(), 10)

    for method, path, body in (("GET", "/api/profile", None), ("GET", "/api/inventory", None),
                               ("POST", "/api/cases/open", {"caseId": case["id"]})):
        refused = await live.api.call(method, path, body, token=player_token)
        assert refused.status == 403 and refused.body["code"] == "account_suspended", (path, refused)
    login = await live.api.post("/api/auth/login", {"username": "cheater", "password": "correct horse"})
    assert login.status == 403 and login.body["code"] == "account_suspended", login
    wrong = await live.api.post("/api/auth/login", {"username": "cheater", "password": "wrong password"})
    assert wrong.status == 401, "the suspension is told only to the password's owner"
    data = await refusal(live.base_url, {"token": player_token}, ["websocket"])
    assert "suspended" in data["message"]
    user = await live.db.users.find_one({"_id": user_id})
    assert user["balance"] == 700 and await live.db.inventory.count_documents({"userId": user_id}) == 1

    restored = await live.api.post(f"/api/admin/users/{user_id}/restore", token=token)
    assert restored.status == 200 and restored.body["user"]["suspended"] is None, restored
    assert (await live.api.get("/api/profile", token=player_token)).status == 200
    client2, _ = await connect_socket(live.base_url, token=player_token)
    await client2.disconnect()
    actions = [e["action"] for e in (await live.api.get("/api/admin/audit", token=token)).body["entries"]]
    assert actions[:2] == ["user.restore", "user.suspend"]


async def test_admin_cannot_suspend_themselves(live):
    token = await admin(live)
    me = (await live.api.get("/api/profile", token=token)).body["user"]["id"]
    reply = await live.api.post(f"/api/admin/users/{me}/suspend", {"reason": "oops"}, token=token)
    assert reply.status == 409 and reply.body["code"] == "cannot_suspend_self", reply
    assert (await live.api.post("/api/admin/users/nobody/suspend", {"reason": "x"}, token=token)).status == 404
    assert (await live.api.post("/api/admin/users/nobody/restore", token=token)).status == 404
    assert (await live.api.post(f"/api/admin/users/{me}/suspend", {"reason": " "}, token=token)).status == 400


# --- adjustments ------------------------------------------------------------------------------


async def test_adjustment_credit_debit_refusal_and_event(live):
    token = await admin(live)
    player_token, user_id = await funded_user(live, "adjusted", 100)
    client, rec = await connect_socket(live.base_url, token=player_token)
    try:
        credit = await live.api.post(f"/api/admin/users/{user_id}/adjustments",
                                     {"amount": 250, "reason": "goodwill"}, token=token)
        assert credit.status == 200, credit
        assert credit.body["success"] is True and credit.body["balance"] == 350 and credit.body["adjustmentId"]
        await rec.wait_for(f"balance:updated:{user_id}", predicate=lambda d: d == {"balance": 350})
        too_much = await live.api.post(f"/api/admin/users/{user_id}/adjustments",
                                       {"amount": -351, "reason": "claw back"}, token=token)
        assert too_much.status == 409 and too_much.body["code"] == "insufficient_balance", too_much
        debit = await live.api.post(f"/api/admin/users/{user_id}/adjustments",
                                    {"amount": -350, "reason": "claw back"}, token=token)
        assert debit.status == 200 and debit.body["balance"] == 0, debit
    finally:
        await client.disconnect()
    entry = await live.db.ledger.find_one({"_id": credit.body["adjustmentId"]})
    assert entry["reason"] == "admin_adjustment" and entry["text"] == "goodwill" and entry["adminId"]
    assert await live.db.operations.count_documents({"kind": "adjust", "state": "pending"}) == 0
    for bad in ({"amount": 0, "reason": "x"}, {"amount": 1.5, "reason": "x"}, {"amount": 5, "reason": ""},
                {"amount": 5, "reason": "x" * 501}, {"amount": 10**11 + 1, "reason": "x"}, {"amount": 5}):
        reply = await live.api.post(f"/api/admin/users/{user_id}/adjustments", bad, token=token)
        assert reply.status == 400, (bad, reply)
    missing = await live.api.post("/api/admin/users/nobody/adjustments", {"amount": 5, "reason": "x"}, token=token)
    assert missing.status == 404
    audit = (await live.api.get("/api/admin/audit", token=token)).body["entries"]
    assert [e["action"] for e in audit] == ["user.adjust", "user.adjust"]
    assert audit[1]["details"]["amount"] == 250 and audit[1]["target"] == user_id
    await assert_money_invariants(live.db)


async def test_concurrent_retries_with_one_key_adjust_once(live):
    token = await admin(live)
    _, user_id = await funded_user(live, "keyed", 0)
    headers = {"Idempotency-Key": "adj-1"}
    replies = await asyncio.gather(*[
        live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": 40, "reason": "refund"},
                      token=token, headers=headers) for _ in range(20)])
    assert all(r.status == 200 for r in replies), Counter(r.status for r in replies)
    assert len({r.body["adjustmentId"] for r in replies}) == 1
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 40
    other = await live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": 41, "reason": "refund"},
                                token=token, headers=headers)
    assert other.status == 409 and other.body["code"] == "idempotency_key_reused"
    await assert_money_invariants(live.db)


async def test_adjustments_racing_openings_sales_and_payments_keep_the_ledger(live):
    token = await admin(live)
    case = await create_case(live, CASE)
    player_token, user_id = await funded_user(live, "busy", 3000)
    opened = [(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=player_token)).body["item"]
              for _ in range(3)]
    work = [live.api.post("/api/cases/open", {"caseId": case["id"]}, token=player_token) for _ in range(10)]
    work += [live.api.post("/api/inventory/claim", {"itemId": item["id"]}, token=player_token) for item in opened]
    work += [live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": a, "reason": "race"}, token=token)
             for a in (-700, 500, -900, 300, -1200, 100)]
    work += [live.api.pay(user_id, 200) for _ in range(3)]
    replies = await asyncio.gather(*work)
    assert all(r.status in (200, 409) for r in replies), Counter(r.status for r in replies)
    await assert_money_invariants(live.db)


@pytest.mark.parametrize("after_apply", [False, True])
async def test_adjustment_failing_at_every_write_then_recovery(live, after_apply):
    from cyberhub.server import recovery

    token = await admin(live)
    _, probe = await funded_user(live, "probe", 100)
    ok, writes = await live.chaos.record(
        live.api.post(f"/api/admin/users/{probe}/adjustments", {"amount": -60, "reason": "probe"}, token=token))
    assert ok.status == 200 and len(writes) >= 4, (ok, writes)
    for index in range(1, len(writes) + 1):
        _, user_id = await funded_user(live, f"faulty{index}", 100)
        key = {"Idempotency-Key": f"fault-{index}-{after_apply}"}
        live.chaos.arm(index, after_apply=after_apply)
        reply = await live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": -60, "reason": "x"},
                                    token=token, headers=key)
        live.chaos.disarm()
        assert live.chaos.tripped and reply.status == 503, (index, writes[index - 1], reply)
        await recovery.recover(live.db, grace_seconds=0)
        await assert_money_invariants(live.db)
        balance = (await live.db.users.find_one({"_id": user_id}))["balance"]
        assert balance in (40, 100), balance
        retry = await live.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": -60, "reason": "x"},
                                    token=token, headers=key)
        assert retry.status == 200 and retry.body["balance"] == 40, (index, retry)
        assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 40
        await assert_money_invariants(live.db)


async def test_socket_of_suspended_player_on_polling_is_disconnected(live):
    token = await admin(live)
    player_token, user_id = await funded_user(live, "poller", 0)
    client, _ = await connect_socket(live.base_url, token=player_token, transports=["polling"])
    disconnected = asyncio.Event()
    client.on("disconnect", lambda *reason: disconnected.set())  # the server's DISCONNECT, or the session ending
    assert (await live.api.post(f"/api/admin/users/{user_id}/suspend", {"reason": "x"}, token=token)).status == 200
    await asyncio.wait_for(disconnected.wait(), WAIT)
    assert not client.connected
    assert isinstance(client, socketio.AsyncClient)


@pytest.fixture
async def redis():
    server = await start_redis()
    yield server
    await server.stop()


async def test_suspension_through_one_process_closes_the_room_on_another(start_live, redis):
    """Two servers on one database and one Redis: the player's socket is on A,
    the admin suspends through B. B's close_room is relayed, so A's socket stops
    getting the player's events at once, and A refuses a new handshake."""
    url = f"redis://127.0.0.1:{redis.port}/0"
    first = await start_live(redis_url=url)
    second = await start_live(redis_url=url)
    token = await second.admin_token()
    player_token, user_id = await funded_user(second, "roamer", 100)
    client, rec = await connect_socket(first.base_url, token=player_token)
    try:
        await until_relayed(second.services.sio, rec)
        assert (await second.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": 1, "reason": "ping"},
                                      token=token)).status == 200
        await rec.wait_for(f"balance:updated:{user_id}")  # the relay works before the suspension
        reply = await second.api.post(f"/api/admin/users/{user_id}/suspend", {"reason": "x"}, token=token)
        assert reply.status == 200, reply
        assert (await second.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": 1, "reason": "after"},
                                      token=token)).status == 200
        # Nor can the socket that is still open on A identify its way back in.
        again = await client.call("user:identify", {"userId": user_id}, timeout=10)
        assert again["code"] == "account_suspended", again
        assert (await second.api.post(f"/api/admin/users/{user_id}/adjustments", {"amount": 1, "reason": "after"},
                                      token=token)).status == 200
        await barrier(second, rec)
        assert len(rec.of(f"balance:updated:{user_id}")) == 1, rec.events
        data = await refusal(first.base_url, {"token": player_token}, ["websocket"])
        assert "suspended" in data["message"]
    finally:
        if client.connected:
            await client.disconnect()
