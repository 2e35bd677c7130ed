"""The chat (issue 19) through a real server: `chat:send` with its ack and
every refusal, the `chat:message` / `chat:removed` broadcasts, the history,
mutes and removals from the back office, the site-wide slow mode."""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import AsyncIterator
from datetime import datetime

import limits.aio.storage.memory
import pytest

from cyberhub.accounts import suspension
from cyberhub.platform.errors import RateLimited
from cyberhub.platform.ratelimit import RateLimiter
from tests.support.client import connect_socket
from tests.support.process import Process, start_redis
from tests.test_economy import funded_user


@pytest.fixture
def frozen_clock(monkeypatch):
    """The rate limits' clock (the `limits` library's in-memory windows), held
    still and moved by the test: windows of one second without sleeping."""
    clock = types.SimpleNamespace(now=time.time())  # from now on, the limits' time stands still
    monkeypatch.setattr(limits.aio.storage.memory, "time", types.SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture
async def redis() -> AsyncIterator[Process]:
    """A real redis-server: the limits' calls then really yield, as in production."""
    server = await start_redis()
    yield server
    await server.stop()


async def chatter(live, name: str, amount: int = 0):
    token, user_id = await funded_user(live, name, amount)
    client, recorder = await connect_socket(live.base_url, token=token)
    return token, user_id, client, recorder


async def send(client, text) -> dict:
    return await client.call("chat:send", {"text": text}, timeout=10)


async def history(live, limit: int | None = None) -> list[dict]:
    reply = await live.api.get("/api/chat/messages" + (f"?limit={limit}" if limit else ""))
    assert reply.status == 200, reply
    return reply.body["messages"]


async def test_a_message_is_acked_stored_and_broadcast_to_every_socket(live):
    _, user_id, client, _ = await chatter(live, "talker")
    viewer, seen = await connect_socket(live.base_url, transports=["polling"])
    try:
        ack = await send(client, "  hello <b>world</b> & 'you'\u00a0")
        assert ack["success"] is True, ack
        message = ack["message"]
        # Trimmed, otherwise exactly as typed: never HTML-escaped.
        assert message["text"] == "hello <b>world</b> & 'you'"
        assert message["userId"] == user_id and message["username"] == "talker"
        assert datetime.fromisoformat(message["createdAt"].replace("Z", "+00:00")).tzinfo is not None
        assert await seen.wait_for("chat:message") == [message]
        assert await history(live) == [message]
        second = (await send(client, "second"))["message"]
        third = (await send(client, "third"))["message"]
        assert await history(live) == [message, second, third]  # oldest first
        assert await history(live, 2) == [second, third]  # the last `limit`, oldest first
        assert [m["id"] for m in await seen.wait_for("chat:message", 3)] == [message["id"], second["id"], third["id"]]
    finally:
        await client.disconnect()
        await viewer.disconnect()


async def test_an_anonymous_socket_must_log_in_to_chat(live):
    anonymous, _ = await connect_socket(live.base_url)
    try:
        ack = await send(anonymous, "hi")
        assert ack == {"success": False, "error": ack["error"], "code": "login_required"}
    finally:
        await anonymous.disconnect()
    assert await history(live) == []


@pytest.mark.parametrize("data", [
    {"text": ""}, {"text": " \t\n\u3000 "}, {"text": 42}, {"text": None}, {"text": ["hi"]}, {}, "hi", None,
    {"text": "x" * 301}, {"text": "nul\x00byte"}, {"text": "two\nlines"}, {"text": "esc\x1b[31m"},
    {"text": "c1\x85"}, {"text": "bidi \u202e reversed"}, {"text": "isolate \u2066x\u2069"},
])
async def test_bad_text_is_refused_and_nothing_is_stored_or_sent(live, data):
    _, _, client, _ = await chatter(live, "writer")
    viewer, seen = await connect_socket(live.base_url)
    try:
        ack = await client.call("chat:send", data, timeout=10)
        assert ack["success"] is False and ack["code"] == "validation_error", ack
        # Barrier: a good message sent afterwards is the first one anybody sees.
        ok = await send(client, "  " + "y" * 300 + "\n")  # 300 characters once trimmed: accepted
        assert ok["success"] is True, ok
        assert await seen.wait_for("chat:message") == [ok["message"]]
        assert await history(live) == [ok["message"]]
    finally:
        await client.disconnect()
        await viewer.disconnect()


LINKS = ["see http://evil.example/x", "HTTPS://SKINS.EXAMPLE", "go to www.freeskins", "join discord.gg/abc",
         "free-skins.com", "t.me/scam", "visit sub.domain.co.uk now", "steam://openurl/x", "best.CASINO",
         "cheap skins at csgo-gift.ru!"]
NOT_LINKS = ["gg wp", "that was 3.50 well spent", "sit next.to me", "e.g. this one", "i.e. no", "a.b.c",
             "node.js rocks", "what...com", "only 5.5 coins", "v2.community"]


async def test_links_are_refused_other_dotted_text_passes(live):
    _, _, client, _ = await chatter(live, "linker")
    try:
        for text in LINKS:
            ack = await send(client, text)
            assert ack["success"] is False and ack["code"] == "chat_link_refused", (text, ack)
        for text in NOT_LINKS:
            ack = await send(client, text)
            assert ack["success"] is True, (text, ack)
        assert [m["text"] for m in await history(live)] == NOT_LINKS
    finally:
        await client.disconnect()


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_chat_per_user": "2/minute",
                                                 "chat_max_per_second": 1}])
async def test_per_user_limit_and_slow_mode_count_only_admitted_messages(live, frozen_clock):
    _, _, alice, _ = await chatter(live, "alice")
    _, _, bob, _ = await chatter(live, "bob")
    try:
        assert (await send(alice, "one"))["success"] is True  # the site's one message this second
        busy = await send(alice, "two")
        assert busy == {"success": False, "error": busy["error"], "code": "chat_slow_mode",
                        "retryAfterMs": busy["retryAfterMs"]}
        assert 1 <= busy["retryAfterMs"] <= 1000, busy  # the window's second, less the real time gone by
        frozen_clock.now += 0.25
        busy = await send(bob, "three")
        assert busy["code"] == "chat_slow_mode", busy
        frozen_clock.now += 0.76  # past the window of "one"
        # Alice's refused message did not count against her 2/minute: this is her second.
        assert (await send(alice, "four"))["success"] is True
        frozen_clock.now += 1.5  # past the window of "four"
        limited = await send(alice, "five")
        assert limited["success"] is False and limited["code"] == "rate_limited", limited
        # Her refused message took no slot of the site's second: Bob's goes through.
        assert (await send(bob, "six"))["success"] is True
        assert [m["text"] for m in await history(live)] == ["one", "four", "six"]
    finally:
        await alice.disconnect()
        await bob.disconnect()


async def test_concurrent_sends_of_one_user_keep_his_limit_and_take_no_site_slot(start_live, redis):
    # Review finding 3: a check, then an await, then the count let every one of
    # a burst pass the per-user check and take a slot of the site's second.
    live = await start_live(redis_url=f"redis://127.0.0.1:{redis.port}/0", rate_limit_chat_per_user="2/minute",
                            chat_max_per_second=3)
    _, _, alice, _ = await chatter(live, "burster")
    _, _, bob, _ = await chatter(live, "bystander")
    try:
        acks = await asyncio.gather(*(send(alice, f"burst {n}") for n in range(10)))
        codes = sorted("ok" if ack["success"] else ack["code"] for ack in acks)
        assert codes == ["ok"] * 2 + ["rate_limited"] * 8, acks
        # Her refused eight took none of the site's three: Bob's message goes out.
        assert (await send(bob, "my turn"))["success"] is True
        assert live.services.limiter.refusals["chat_per_user"] == 8  # every refusal counted
        assert len(await history(live)) == 3
    finally:
        await alice.disconnect()
        await bob.disconnect()


async def test_a_hit_given_back_frees_its_slot_in_redis(redis):
    limiter = RateLimiter({"rule": "2/minute"}, redis_url=f"redis://127.0.0.1:{redis.port}/0")
    try:
        await limiter.hit("rule", "k")
        await limiter.hit("rule", "k")
        await limiter.give_back("rule", "k")
        await limiter.hit("rule", "k")  # the slot given back
        with pytest.raises(RateLimited):
            await limiter.hit("rule", "k")
        await limiter.give_back("rule", "other")  # nothing counted there: a no-op
        assert limiter.fallback_checks == 0  # Redis answered every call
        # Redis gone: hits go to this process's own counters, and so does a give-back.
        assert await redis.stop() == 0
        await limiter.hit("rule", "k")
        await limiter.hit("rule", "k")
        await limiter.give_back("rule", "k")
        await limiter.hit("rule", "k")
        with pytest.raises(RateLimited):
            await limiter.hit("rule", "k")
        assert limiter.fallback_checks >= 4
    finally:
        await limiter.storage.bridge.get_connection().aclose()


@pytest.mark.parametrize("settings_overrides", [{"chat_max_per_second": 0}])
async def test_zero_turns_slow_mode_off(live, frozen_clock):
    _, _, client, _ = await chatter(live, "flooder")
    try:
        for n in range(30):
            assert (await send(client, f"m{n}"))["success"] is True
    finally:
        await client.disconnect()


async def test_a_suspension_is_checked_at_send_time(live):
    _, user_id, client, _ = await chatter(live, "suspect")
    try:
        assert (await send(client, "before"))["success"] is True
        # As if suspended by another process: this socket stays open here.
        await suspension.suspend(live.db, user_id=user_id, reason="fraud", by="system")
        ack = await send(client, "after")
        assert ack["success"] is False and ack["code"] == "account_suspended", ack
        assert [m["text"] for m in await history(live)] == ["before"]
    finally:
        await client.disconnect()


@pytest.mark.parametrize("settings_overrides", [{"chat_min_deposited": 500}])
async def test_chat_needs_the_minimum_deposit(live):
    _, user_id, client, _ = await chatter(live, "newbie")
    try:
        assert (await send(client, "hi"))["code"] == "chat_not_eligible"
        assert (await live.api.pay(user_id, 300)).status == 200
        assert (await send(client, "hi"))["code"] == "chat_not_eligible"
        assert (await live.api.pay(user_id, 200)).status == 200
        assert (await send(client, "hi"))["success"] is True
    finally:
        await client.disconnect()


@pytest.mark.parametrize("settings_overrides", [{"chat_history_size": 3}])
async def test_the_history_keeps_the_last_history_size_messages(live):
    _, _, client, _ = await chatter(live, "archivist")
    try:
        for n in range(7):
            assert (await send(client, f"m{n}"))["success"] is True
        assert [m["text"] for m in await history(live, 100)] == ["m4", "m5", "m6"]
        assert await live.db.chat_messages.count_documents({}) == 3
    finally:
        await client.disconnect()


@pytest.mark.parametrize("settings_overrides", [{"chat_history_size": 2, "chat_max_per_second": 0}])
async def test_concurrent_messages_never_leave_more_than_history_size(live):
    # Review finding 9: an insert landing after the delete meant for it (the
    # chaos store yields at every call, so the sends really interleave).
    clients = [(await chatter(live, f"crowd{n}"))[2] for n in range(4)]
    try:
        for burst in range(3):
            acks = await asyncio.gather(*(send(c, f"{burst}-{i}-{n}") for i, c in enumerate(clients) for n in range(5)))
            assert all(ack["success"] for ack in acks), acks
            newest = sorted(int(ack["message"]["id"]) for ack in acks)[-2:]
            assert await live.db.chat_messages.count_documents({}) == 2
            assert [int(m["id"]) for m in await history(live, 100)] == newest
    finally:
        for client in clients:
            await client.disconnect()


async def test_the_counter_exists_from_start_up(live):
    # Created before the first message, so concurrent first messages never race
    # its upsert (a DuplicateKeyError on MongoDB).
    assert await live.db.chat_state.find_one({"_id": "seq"}) == {"_id": "seq", "value": 0}


async def test_history_limit_is_validated(live):
    for bad in ("0", "101", "x", "-1"):
        reply = await live.api.get(f"/api/chat/messages?limit={bad}")
        assert reply.status == 400 and reply.body["code"] == "invalid_limit", reply


async def test_an_admin_mutes_and_unmutes_a_player(live):
    admin = await live.admin_token()
    token, user_id, client, _ = await chatter(live, "loud")
    try:
        muted = await live.api.post(f"/api/admin/users/{user_id}/mute", {"minutes": 10, "reason": "spam"},
                                    token=admin)
        assert muted.status == 200, muted
        until = muted.body["user"]["mutedUntil"]
        assert until is not None
        shown = await live.api.get(f"/api/admin/users/{user_id}", token=admin)
        assert shown.body["user"]["mutedUntil"] == until
        ack = await send(client, "still here")
        assert ack["success"] is False and ack["code"] == "chat_muted", ack
        assert datetime.fromisoformat(ack["until"].replace("Z", "+00:00")) == \
            datetime.fromisoformat(until.replace("Z", "+00:00"))

        unmuted = await live.api.post(f"/api/admin/users/{user_id}/unmute", token=admin)
        assert unmuted.status == 200 and unmuted.body["user"]["mutedUntil"] is None, unmuted
        assert (await send(client, "back"))["success"] is True
        actions = [e["action"] for e in (await live.api.get("/api/admin/audit", token=admin)).body["entries"]]
        assert actions[:2] == ["user.unmute", "user.mute"]
        # Players cannot mute.
        assert (await live.api.post(f"/api/admin/users/{user_id}/mute", {"minutes": 1, "reason": "x"},
                                    token=token)).status == 403
    finally:
        await client.disconnect()


@pytest.mark.parametrize("body", [
    {"minutes": 0, "reason": "x"}, {"minutes": 525601, "reason": "x"}, {"minutes": 1.5, "reason": "x"},
    {"minutes": "5", "reason": "x"}, {"minutes": 5, "reason": ""}, {"minutes": 5, "reason": "   "},
    {"minutes": 5, "reason": "r" * 501}, {"minutes": 5, "reason": "bad\x07bell"}, {"minutes": 5},
    {"minutes": 5, "reason": "x", "extra": 1},
])
async def test_bad_mutes_are_refused(live, body):
    admin = await live.admin_token()
    _, user = await live.api.register("target")
    reply = await live.api.post(f"/api/admin/users/{user['id']}/mute", body, token=admin)
    assert reply.status == 400 and reply.body["success"] is False, reply
    assert (await live.api.get(f"/api/admin/users/{user['id']}", token=admin)).body["user"]["mutedUntil"] is None


async def test_muting_or_unmuting_nobody_is_404(live):
    admin = await live.admin_token()
    for path in ("mute", "unmute"):
        reply = await live.api.post(f"/api/admin/users/nobody/{path}", {"minutes": 1, "reason": "x"}
                                    if path == "mute" else None, token=admin)
        assert reply.status == 404 and reply.body["code"] == "user_not_found", reply


async def test_an_admin_removes_a_message_everywhere(live):
    admin = await live.admin_token()
    token, _, client, _ = await chatter(live, "rude")
    viewer, seen = await connect_socket(live.base_url)
    try:
        kept = (await send(client, "fine"))["message"]
        rude = (await send(client, "rude words"))["message"]
        assert (await live.api.call("DELETE", f"/api/admin/chat/messages/{rude['id']}", token=token)).status == 403
        removed = await live.api.call("DELETE", f"/api/admin/chat/messages/{rude['id']}", token=admin)
        assert removed.status == 200 and removed.body == {"success": True}, removed
        assert await seen.wait_for("chat:removed") == [{"id": rude["id"]}]
        assert await history(live) == [kept]
        for missing in (rude["id"], "0", "abc", "999999999"):
            again = await live.api.call("DELETE", f"/api/admin/chat/messages/{missing}", token=admin)
            assert again.status == 404 and again.body["code"] == "chat_message_not_found", again
        entry = (await live.api.get("/api/admin/audit", token=admin)).body["entries"][0]
        assert entry["action"] == "chat.remove" and entry["target"] == rude["id"]
        assert entry["details"]["text"] == "rude words"
    finally:
        await client.disconnect()
        await viewer.disconnect()


async def test_chat_broadcasts_take_the_fast_path_and_are_counted(live):
    _, _, client, _ = await chatter(live, "fastpath")
    viewer, seen = await connect_socket(live.base_url, transports=["websocket"])
    manager = live.services.sio.manager
    try:
        await send(client, "warm-up")  # the viewer's CONNECT is written, its queue idle
        await seen.wait_for("chat:message")
        fast, queued = manager.fast_deliveries, manager.queued_deliveries
        ack = await send(client, "fast")
        await seen.wait_for("chat:message", 2)
        # One frame written straight to both idle websockets (sender and viewer).
        assert (manager.fast_deliveries - fast, manager.queued_deliveries - queued) == (2, 0)
        removed = await live.api.call("DELETE", f"/api/admin/chat/messages/{ack['message']['id']}",
                                      token=await live.admin_token())
        assert removed.status == 200
        await seen.wait_for("chat:removed")
        assert (manager.fast_deliveries - fast, manager.queued_deliveries - queued) == (4, 0)
        metrics = await live.api.get("/metrics")
        assert 'cyberhub_socket_events_emitted_total{event="chat:message"} 2.0' in metrics.body, metrics.body[:3000]
    finally:
        await client.disconnect()
        await viewer.disconnect()
