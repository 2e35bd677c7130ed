"""battle:watch's limits (README.md, "Case battles"): each watch counts
against the socket's `socket_events` rate limit, a socket watches at most
MAX_WATCHED battles at once, and an ended battle is answered without joining
its room."""

from __future__ import annotations

import pytest

from cyberhub.games.battles.events import MAX_WATCHED
from tests.support.battles import create, make_cases, player
from tests.support.client import connect_socket


@pytest.fixture
def settings_overrides() -> dict:
    return {"battle_max_open_per_user": 100}


async def waiting_battles(live, n: int) -> tuple[list[str], str]:
    cases = await make_cases(live)
    token, _ = await player(live, "host", 100000)
    return [(await create(live, token, [cases[1]["id"]])).body["battle"]["id"] for _ in range(n)], token


async def test_watch_counts_against_the_socket_event_limit(start_live):
    live = await start_live(rate_limit_socket_events="3/minute")
    ids, _ = await waiting_battles(live, 1)
    client, _ = await connect_socket(live.base_url)
    try:
        for _ in range(2):
            assert (await client.call("battle:watch", {"battleId": ids[0]}, timeout=10))["success"] is True
        garbage = await client.call("battle:watch", {"battleId": 7}, timeout=10)
        assert garbage["code"] == "invalid_battle_id", garbage  # counted too
        refused = await client.call("battle:watch", {"battleId": ids[0]}, timeout=10)
        assert refused["success"] is False and refused["code"] == "rate_limited", refused
    finally:
        await client.disconnect()


async def test_a_socket_watches_a_bounded_number_of_battles(live):
    ids, _ = await waiting_battles(live, MAX_WATCHED + 1)
    client, _ = await connect_socket(live.base_url)
    try:
        for battle_id in ids[:MAX_WATCHED]:
            assert (await client.call("battle:watch", {"battleId": battle_id}, timeout=10))["success"] is True
        again = await client.call("battle:watch", {"battleId": ids[0]}, timeout=10)  # already in: fine
        assert again["success"] is True, again
        refused = await client.call("battle:watch", {"battleId": ids[-1]}, timeout=10)
        assert refused == {"success": False, "error": f"A socket watches at most {MAX_WATCHED} battles; "
                           "unwatch one first", "code": "too_many_watched"}, refused
        assert await client.call("battle:unwatch", {"battleId": ids[0]}, timeout=10) == {"success": True}
        assert (await client.call("battle:watch", {"battleId": ids[-1]}, timeout=10))["success"] is True
    finally:
        await client.disconnect()


async def test_an_ended_battle_is_answered_without_joining_its_room(live):
    ids, token = await waiting_battles(live, MAX_WATCHED + 1)
    for battle_id in ids[:MAX_WATCHED]:  # the creator leaving cancels each
        assert (await live.api.post(f"/api/battles/{battle_id}/leave", token=token)).status == 200
    client, _ = await connect_socket(live.base_url)
    try:
        for battle_id in ids[:MAX_WATCHED]:
            ack = await client.call("battle:watch", {"battleId": battle_id}, timeout=10)
            assert ack["success"] is True and ack["battle"]["status"] == "cancelled", ack
        # None of them took a room: the socket still has room for a live battle.
        live_one = await client.call("battle:watch", {"battleId": ids[-1]}, timeout=10)
        assert live_one["success"] is True and live_one["battle"]["status"] == "waiting", live_one
    finally:
        await client.disconnect()
