"""The live feed's cap (LIVE_FEED_MAX_PER_SECOND): the rule on explicit times,
then through a server whose feed clock the test moves."""

from __future__ import annotations

import itertools

import pytest

from cyberhub.realtime.livefeed import WINDOW_SECONDS, FeedGate
from tests.support.client import connect_socket
from tests.test_economy import create_case, funded_user


def drop(n: int, price: int) -> dict:
    return {"username": f"u{n}", "item": {"name": f"i{n}", "rarity": "common", "price": price, "image": None},
            "caseId": "c", "caseName": "C"}


def simulate(gate: FeedGate, arrivals: list[tuple[float, dict]]) -> list[tuple[float, dict]]:
    """Offers each drop at its time; a held drop is released at the gate's next slot
    (what LiveFeed's timer does). Returns (time, drop) of every broadcast."""
    sent = []

    def release_until(t: float) -> None:
        while (slot := gate.next_slot()) is not None and slot <= t:
            out = gate.release(slot)
            assert out is not None
            sent.append((slot, out))

    for t, d in arrivals:
        release_until(t)
        out = gate.offer(d, t)
        if out is not None:
            sent.append((t, out))
    release_until(float("inf"))
    return sent


def test_no_cap_sends_everything_at_once():
    gate = FeedGate(0)
    assert all(gate.offer(drop(i, i), 0.0) is not None for i in range(100))
    assert gate.next_slot() is None and gate.skipped == 0


def test_below_the_cap_every_drop_goes_out_at_once_unchanged():
    gate = FeedGate(3)
    arrivals = [(i * 0.4, drop(i, 10)) for i in range(50)]  # 2.5 per second
    assert simulate(gate, arrivals) == arrivals
    assert gate.skipped == 0
    burst = FeedGate(5)  # a burst up to the cap also goes out at once
    assert [burst.offer(drop(i, 1), 7.0) for i in range(5)] == [drop(i, 1) for i in range(5)]


def test_above_the_cap_the_most_valuable_waiting_drop_takes_the_next_slot():
    gate = FeedGate(3)
    first = [gate.offer(drop(i, 10), t) for i, t in enumerate((0.0, 0.1, 0.2))]
    assert first == [drop(0, 10), drop(1, 10), drop(2, 10)]
    assert gate.offer(drop(3, 50), 0.3) is None  # held
    assert gate.offer(drop(4, 900), 0.4) is None  # more valuable: replaces it
    assert gate.offer(drop(5, 20), 0.5) is None  # less valuable: skipped
    assert gate.offer(drop(6, 900), 0.6) is None  # a tie keeps the earlier one
    assert gate.skipped == 3
    assert gate.next_slot() == 0.0 + WINDOW_SECONDS
    assert gate.release(0.99) is None
    assert gate.release(1.0) == drop(4, 900)
    assert gate.next_slot() is None


@pytest.mark.parametrize("cap", [1, 4, 10])
def test_a_flood_never_exceeds_the_cap_in_any_second_and_keeps_the_best_of_each_interval(cap):
    gate = FeedGate(cap)
    # 50 drops per second for 6 s; values cycle so every interval has a clear best
    arrivals = [(i / 50, drop(i, (i * 37) % 101)) for i in range(300)]
    sent = simulate(gate, arrivals)
    times = [t for t, _ in sent]
    assert all(sum(1 for u in times if t <= u < t + WINDOW_SECONDS) <= cap for t in times)
    assert len(sent) + gate.skipped == len(arrivals)  # every drop either broadcast or counted as skipped
    # a drop that waited for its slot beat every drop skipped since the previous broadcast
    sent_ids = {id(d) for _, d in sent}
    skipped = [(u, x) for u, x in arrivals if id(x) not in sent_ids]
    arrived = {id(x): u for u, x in arrivals}
    for (prev_t, _), (t, d) in itertools.pairwise(sent):
        if arrived[id(d)] < t:
            rivals = [x["item"]["price"] for u, x in skipped if prev_t <= u < t]
            assert all(d["item"]["price"] >= price for price in rivals)
    assert len(sent) >= cap * 5  # the feed keeps flowing at the cap


async def test_the_cap_on_a_server_skips_drops_but_never_per_user_events(start_live, sample_case):
    live = await start_live(live_feed_max_per_second=2)
    now = [1000.0]
    live.services.notifier.feed.clock = lambda: now[0]
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "opener", 4 * sample_case["price"])
    viewer, seen = await connect_socket(live.base_url)
    own, mine = await connect_socket(live.base_url, token=token)
    try:
        items = []
        for _ in range(4):  # all at the same feed time: 2 go out, 1 waits, 1 is skipped
            reply = await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
            assert reply.status == 200, reply
            items.append(reply.body["item"])
        # Per-user events: all four, without the feed's clock moving at all.
        await mine.wait_for(f"balance:updated:{user_id}", count=4)
        await mine.wait_for(f"inventory:updated:{user_id}", count=4)
        drops = await seen.wait_for("drop:new", count=2)
        assert [d["item"]["name"] for d in drops] == [items[0]["name"], items[1]["name"]]

        now[0] += 1.0  # the window moves on: the waiting drop takes the free slot
        drops = await seen.wait_for("drop:new", count=3)
        best = max(items[2:], key=lambda item: item["price"])  # the earlier one on a tie
        assert drops[2]["item"] == {k: best[k] for k in ("name", "rarity", "price", "image")}
        assert drops[2]["username"] == "opener" and drops[2]["caseId"] == case["id"]

        metrics = (await live.api.get("/metrics")).body
        assert "cyberhub_live_feed_skipped_total 1.0" in metrics
        stats = (await live.api.get("/api/stats/public")).body
        assert [d["item"]["name"] for d in stats["recentDrops"]] == [i["name"] for i in reversed(items)]
    finally:
        await viewer.disconnect()
        await own.disconnect()
