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

- sockets leave (almost) no cyclic garbage: cyberhub/realtime/fanout.py drops the
  references that tied a closed websocket's request, handler and engine.io
  reader into cycles, so refcounting frees a disconnected socket at once
  (measured: 92 → 8 unreachable objects per closed socket, and those 8, a
  class engine.io makes per request, die young);
- `gc.freeze()` once start-up is over: modules, settings, the catalogue and
  every other object alive then moves to the permanent generation and is
  never scanned again;
- and again, on the loop's next step, after a middle-generation (or full)
  collection that took FREEZE_AFTER_SECONDS or more — one that walked
  thousands of survivors, i.e. a wave of new long-lived objects such as the
  sessions of a connect or reconnect storm: what survived is frozen at once,
  then a (now cheap) full collection resets CPython's count of long-lived
  objects. So most of a storm's sessions are walked by two young collections
  and never by a full one. Measured in 5,000-client storms (bench/README.md,
  issue 18, third session): full collections 1.6–2.1 s per run before, 0.3–0.7 s
  after; all collections during a storm 1.9–2.7 s before, 1.1–2.0 s after.
  (Until 2026-12-07 it froze only after a full collection slower than 10 ms,
  and a storm ran ~180 full collections of ~10 ms each.)
  The price: whatever is in flight at a freeze and later becomes garbage in
  a cycle is never collected. Hence the duration gate — under steady REST
  load middle collections take under 2.5 ms (97 of 98 measured), so freezes
  happen in growth waves, not all the time — and the paths that made cycles
  do not any more: sessions (above) and refused requests
  (handlers/base.py `_release_refusal`). `cyberhub_gc_frozen_objects` stays
  level across rounds of 20,000 refused requests, of catalogue and inventory
  reads, and of 2,000 default clients connecting and leaving
  (bench/README.md); tests/test_loopmonitor.py checks the refusals;
- the young generations keep CPython's thresholds: their collections walk a
  few thousand objects (~1–5 ms); full collections come after 3 middle-
  generation ones instead of 10 (GC_THRESHOLDS), so each walks less.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable

# Full collections after 3 middle-generation ones instead of 10 (with each middle
# collection's survivors frozen, they find little left to walk).
GC_THRESHOLDS = (700, 10, 3)
# Collections of this generation or older make the loop freeze their survivors, when
# they took at least FREEZE_AFTER_SECONDS: a collection that long walked thousands of
# survivors, a wave of new long-lived objects (sessions). Under steady REST load, error
# paths included, 97 of 98 middle collections took under 2.5 ms (half under 1 ms); in
# a storm a third of them take longer, and those carry most of the survivors.
FREEZE_FROM_GENERATION = 1
FREEZE_AFTER_SECONDS = 0.0025
# A stall of S seconds makes this timer at least S - LAG_INTERVAL_SECONDS late,
# so no lag sample over 40 ms means no stall over 50 ms. 100 wake-ups a second
# cost ~0.2 % of a core.
LAG_INTERVAL_SECONDS = 0.01


class GcTimer:
    """`gc.callbacks` hook: times every collection and reports (generation, seconds)."""

    def __init__(self, observe: Callable[[int, float], None],
                 freeze_from_generation: int | None = FREEZE_FROM_GENERATION,
                 freeze_after: float = FREEZE_AFTER_SECONDS) -> None:
        self._observe = observe
        self._freeze_from = freeze_from_generation  # None: never freeze
        self._freeze_after = freeze_after
        self._started: float | None = None
        self.longest = 0.0
        self.freeze_pending = False  # set by a middle or full collection, done by maybe_freeze()
        self.freezes = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            seconds = time.perf_counter() - self._started
            self._started = None
            self.longest = max(self.longest, seconds)
            generation = info.get("generation", -1)
            if self._freeze_from is not None and generation >= self._freeze_from \
                    and seconds >= self._freeze_after and not self.freeze_pending:
                self.freeze_pending = True
                self._wake_loop()
            with contextlib.suppress(Exception):  # a metrics failure must never break the collector
                self._observe(generation, seconds)

    def _wake_loop(self) -> None:
        """Freeze on the loop's next step, not the lag probe's next tick: in a
        connect storm the loop can run several full collections before a
        lag-probe tick (the collector may also run in a worker thread, hence
        call_soon_threadsafe)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(self.maybe_freeze)

    def maybe_freeze(self) -> None:
        """Called from the event loop (never from inside the collector)."""
        if self.freeze_pending:  # stays set during the collections below: they must not ask again
            self.freezes += 1
            # Young garbage first (cheap): cyclic garbage frozen with the rest
            # would never be collected.
            gc.collect(1)
            gc.freeze()
            # A full collection now walks only the young generations (everything
            # older is frozen): a few ms. It also resets CPython's count of
            # long-lived objects, so the next automatic full collection comes
            # after modest growth and walks only that growth — not 25 % of the
            # whole heap, as it would if that count kept the pre-freeze size.
            gc.collect()
            self.freeze_pending = False

    def install(self) -> None:
        """Called on the event loop that maybe_freeze() is to run on."""
        self._loop = asyncio.get_running_loop()
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        self._loop = None
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
        self.measured = asyncio.Event()  # set once the first lag is observed (and exported)

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
            self.measured.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
