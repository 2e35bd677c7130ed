"""The public live feed (`drop:new`, `upgrade:new`) with one cap:
LIVE_FEED_MAX_PER_SECOND.

Every feed event is a broadcast to every socket, so the rate of openings and
upgrades times the cost of a broadcast is what the feed costs. The cap bounds
it, over both kinds together (one window: the cap is the feed's total):

- at most `max_per_second` broadcasts in any one-second window (sliding);
- while below that, every drop is broadcast at once, unchanged;
- above it, drops wait as candidates: whenever the window allows one more
  broadcast, the most valuable candidate (item price — a drop's item, an
  upgrade's target — whichever its kind; the earlier one on a tie) is sent
  and the other candidates are skipped — the feed shows the
  best of each interval, never a backlog of stale drops;
- 0 = no cap.

`FeedGate` is the pure rule, driven by the caller's clock (tests give it
explicit times); `LiveFeed` runs it on the event loop. Only the public feed
events go through here: per-user events never wait for or depend on the cap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

WINDOW_SECONDS = 1.0
T = TypeVar("T")


def drop_value(drop: dict) -> float:
    item = drop.get("item") if isinstance(drop, dict) else None
    price = item.get("price") if isinstance(item, dict) else None
    return float(price) if isinstance(price, int | float) else 0.0


class FeedGate(Generic[T]):
    """Decides, for given times, which drops are broadcast and which skipped.
    `value` ranks what waits (default: a drop:new payload's item price)."""

    def __init__(self, max_per_second: int, value: Callable[[T], float] = drop_value) -> None:
        self.max_per_second = max_per_second
        self.value = value
        self.sent_at: deque[float] = deque()  # times of the broadcasts in the current window
        self.candidate: T | None = None  # the best drop waiting for a free slot
        self.skipped = 0

    def _expire(self, now: float) -> None:
        while self.sent_at and self.sent_at[0] + WINDOW_SECONDS <= now:
            self.sent_at.popleft()

    def offer(self, drop: T, now: float) -> T | None:
        """A new drop at `now`: returns it if it is to be broadcast now; else it
        is held (or skipped, when a more valuable one is already held)."""
        if self.max_per_second <= 0:
            return drop
        self._expire(now)
        if self.candidate is None and len(self.sent_at) < self.max_per_second:
            self.sent_at.append(now)
            return drop
        if self.candidate is None or self.value(drop) > self.value(self.candidate):
            if self.candidate is not None:
                self.skipped += 1
            self.candidate = drop
        else:
            self.skipped += 1
        return None

    def next_slot(self) -> float | None:
        """When the held candidate may be sent; None when nothing is held."""
        if self.candidate is None:
            return None
        if len(self.sent_at) < self.max_per_second:
            return self.sent_at[-1] if self.sent_at else 0.0
        return self.sent_at[0] + WINDOW_SECONDS

    def release(self, now: float) -> T | None:
        """The held candidate if its slot has come at `now`, recorded as sent."""
        if self.candidate is None:
            return None
        self._expire(now)
        if len(self.sent_at) >= self.max_per_second:
            return None
        drop, self.candidate = self.candidate, None
        self.sent_at.append(now)
        return drop


class LiveFeed:
    """FeedGate on the running event loop: broadcasts (event, payload) through
    `send`, counts skipped ones with `on_skipped`. Every event name published
    here shares the one window."""

    def __init__(self, max_per_second: int, send: Callable[[str, dict], Awaitable[None]],
                 on_skipped: Callable[[int], Any] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.gate: FeedGate[tuple[str, dict]] = FeedGate(max_per_second, value=lambda entry: drop_value(entry[1]))
        self._send = send
        self._on_skipped = on_skipped
        self.clock = clock  # None: the event loop's clock (tests set their own)
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Future] = set()  # broadcasts started by the timer

    def _now(self) -> float:
        return self.clock() if self.clock else asyncio.get_running_loop().time()

    async def publish(self, event: str, payload: dict) -> None:
        before = self.gate.skipped
        ready = self.gate.offer((event, payload), self._now())
        self._count_skipped(before)
        if ready is not None:
            await self._send(*ready)
        else:
            self._schedule()

    def _count_skipped(self, before: int) -> None:
        if self.gate.skipped > before and self._on_skipped is not None:
            self._on_skipped(self.gate.skipped - before)

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        at = self.gate.next_slot()
        if at is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, at - self._now())
        self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        entry = self.gate.release(self._now())
        if entry is not None:
            task = asyncio.ensure_future(self._send(*entry))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
