"""The GC set-up of cyberhub/realtime/loopmonitor.py: a middle-generation or full
collection makes the event loop freeze its survivors on its very next step (not
at the next lag-probe tick), once; a young collection does not; and the
thresholds the server runs with."""

from __future__ import annotations

import asyncio
import gc

from cyberhub.platform.errors import AppError
from cyberhub.realtime import loopmonitor


async def collection_freezes(generation: int) -> bool:
    """Whether one collection of `generation` made the loop freeze (once, on its next step)."""
    observed: list[tuple[int, float]] = []
    timer = loopmonitor.GcTimer(lambda gen, seconds: observed.append((gen, seconds)), freeze_after=0.0)
    timer.install()
    try:
        frozen = gc.get_freeze_count()
        gc.collect(generation)  # timed by the hook
        assert (generation, ) == tuple({gen for gen, _ in observed}), observed
        asked = timer.freeze_pending
        assert timer.freezes == 0
        await asyncio.sleep(0)  # one loop step: the freeze was scheduled before this task's wake-up
        assert not timer.freeze_pending and timer.freezes == int(asked)
        if asked:
            assert gc.get_freeze_count() >= frozen
        # the freeze's own collections did not ask for another one
        await asyncio.sleep(0)
        assert timer.freezes == int(asked)
        return asked
    finally:
        timer.uninstall()


async def test_a_middle_generation_collection_freezes_on_the_loops_next_step_once():
    assert loopmonitor.FREEZE_FROM_GENERATION == 1
    assert await collection_freezes(1)


async def test_a_full_collection_freezes_too():
    assert await collection_freezes(2)


async def test_a_young_collection_does_not_freeze():
    assert not await collection_freezes(0)


async def test_freezing_can_be_switched_off():
    timer = loopmonitor.GcTimer(lambda generation, seconds: None, freeze_from_generation=None)
    timer.install()
    try:
        gc.collect()
        await asyncio.sleep(0)
        assert timer.freezes == 0 and not timer.freeze_pending
    finally:
        timer.uninstall()


async def test_the_server_runs_with_the_tuned_thresholds(live):
    assert gc.get_threshold() == loopmonitor.GC_THRESHOLDS == (700, 10, 3)
    assert live.server.gc_timer in gc.callbacks


async def test_a_long_middle_collection_freezes_and_a_short_one_does_not():
    timer = loopmonitor.GcTimer(lambda generation, seconds: None, freeze_after=3600.0)
    timer.install()
    try:
        gc.collect(1)
        await asyncio.sleep(0)
        assert timer.freezes == 0 and not timer.freeze_pending
    finally:
        timer.uninstall()
    assert loopmonitor.FREEZE_AFTER_SECONDS == 0.0025


async def test_refused_requests_leave_no_cyclic_garbage(live):
    """A refusal's traceback held the frames that held its handler, which held
    the refusal: 40–70 objects per 404 or bad token that only the collector
    could free, and never once a freeze had caught the request in flight."""
    gc.collect()
    gc.disable()  # nothing is collected behind the test's back
    try:
        for _ in range(5):
            assert (await live.api.get("/api/nope")).status == 404
            assert (await live.api.get("/api/inventory", token="bad.token.here")).status == 401
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept in gc.garbage
        gc.collect()
        refusals = [type(o).__name__ for o in gc.garbage if isinstance(o, AppError)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert refusals == []
