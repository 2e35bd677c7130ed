"""The lobby feed (cyberhub/games/battles/events.py LobbyFeed): one
`battles:updated` broadcast in the delivery queue at a time, each battle's
latest state, nobody waiting for it. The broadcast is a function handed to the
feed; here it records what it was given and returns when the test says the
broadcast has been delivered."""

from __future__ import annotations

import asyncio

from cyberhub.games.battles.events import LobbyFeed


class Broadcasts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.delivered = asyncio.Semaphore(0)  # one release per broadcast the test lets through
        self.started = asyncio.Event()

    async def emit(self, summary: dict) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.sent.append((summary["id"], summary["version"]))
        self.started.set()
        await self.delivered.acquire()
        self.in_flight -= 1

    async def deliver(self, count: int, *, until: int) -> None:
        """Lets `count` broadcasts through, then waits until `until` have started."""
        for _ in range(count):
            self.delivered.release()
        while len(self.sent) < until:
            self.started.clear()
            await self.started.wait()


async def test_one_broadcast_at_a_time_and_the_latest_state_of_each_battle():
    broadcasts = Broadcasts()
    feed = LobbyFeed(broadcasts.emit)
    feed.publish({"id": "a", "version": 1})  # goes out at once
    await broadcasts.deliver(0, until=1)
    # while it is being delivered: b changes, a changes twice, c changes
    for summary in ({"id": "b", "version": 1}, {"id": "a", "version": 2}, {"id": "a", "version": 3},
                    {"id": "c", "version": 1}):
        feed.publish(summary)
    await broadcasts.deliver(1, until=2)
    await broadcasts.deliver(1, until=3)
    await broadcasts.deliver(1, until=4)
    # b, then a's latest (in the place of its first pending change), then c; a@2 was never sent
    assert broadcasts.sent == [("a", 1), ("b", 1), ("a", 3), ("c", 1)]
    assert broadcasts.most_in_flight == 1
    broadcasts.delivered.release()
    await feed.close()


async def test_publishing_never_waits_for_a_broadcast():
    broadcasts = Broadcasts()
    feed = LobbyFeed(broadcasts.emit)
    for version in range(100):  # ten battles, ten changes each: every publish returns at once
        feed.publish({"id": f"b{version % 10}", "version": version})
    await broadcasts.deliver(0, until=1)
    assert broadcasts.in_flight == 1
    for _ in range(10):
        broadcasts.delivered.release()
    await feed.close()
    # each battle once, in its latest state, in the order the battles first changed
    assert broadcasts.sent == [(f"b{k}", 90 + k) for k in range(10)]


async def test_close_sends_what_is_pending():
    broadcasts = Broadcasts()
    feed = LobbyFeed(broadcasts.emit)
    feed.publish({"id": "x", "version": 1})
    await broadcasts.deliver(0, until=1)
    feed.publish({"id": "y", "version": 1})
    for _ in range(2):
        broadcasts.delivered.release()
    await feed.close()
    assert broadcasts.sent == [("x", 1), ("y", 1)]
