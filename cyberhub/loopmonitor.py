"""Event-loop health: how late the loop runs a timer (lag) and how long each
garbage collection stops everything (GC pauses), both exported as histograms
in /metrics — and the GC set-up that keeps those pauses short with thousands
of sockets.

Why the GC needs care here: each connected socket keeps a few dozen
container objects alive (engine.io socket and queue, Tornado handler, stream
and connection, asyncio tasks and futures). CPython's generation-2 collection
walks every tracked object, so with 5,000 sockets (~1.1 million objects) one
full collection stalled the IOLoop for 0.7–0.8 s (bench/README.md). What is
done about it (measured, bench/README.md "GC"):

- `gc.freeze()` once start-up is over: modules, settings, the catalogue and
  every other object alive then moves to the permanent generation and is
  never scanned again;
- a larger generation-0 threshold, so the short-lived garbage of a burst of
  requests is collected in fewer, still short, young collections; and
  generation-2 collections only after many more generation-1 ones —
  full collections then come rarely. CPython 3.11 also skips a full
  collection until the objects that survived since the last one reach 25 %
  of those already in the old generation, so with many long-lived sockets
  full passes become rarer on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable

GC_THRESHOLDS = (50_000, 20, 100)  # CPython default (700, 10, 10)
LAG_INTERVAL_SECONDS = 0.1


class GcTimer:
    """`gc.callbacks` hook: times every collection and reports (generation, seconds)."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self._observe = observe
        self._started: float | None = None
        self.longest = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            seconds = time.perf_counter() - self._started
            self._started = None
            self.longest = max(self.longest, seconds)
            with contextlib.suppress(Exception):  # a metrics failure must never break the collector
                self._observe(info.get("generation", -1), seconds)

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


_tuned = False


def tune_gc() -> None:
    """Freeze what start-up created and raise the thresholds (see the module
    doc). Once per process: later servers in the same process (tests) reuse it."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class LoopLag:
    """Every LAG_INTERVAL_SECONDS, how much later than asked the loop woke us."""

    def __init__(self, observe: Callable[[float], None], interval: float = LAG_INTERVAL_SECONDS) -> None:
        self._observe = observe
        self._interval = interval
        self._task: asyncio.Task | None = None
        self.longest = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            lag = max(0.0, loop.time() - due)
            self.longest = max(self.longest, lag)
            self._observe(lag)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
