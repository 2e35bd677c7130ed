"""The GC set-up of cyberhub/realtime/loopmonitor.py: a slow full collection makes the
event loop freeze the long-lived objects on its very next step (not at the
next lag-probe tick), once, and the thresholds the server runs with."""

from __future__ import annotations

import asyncio
import gc

from cyberhub.realtime import loopmonitor


async def test_a_slow_full_collection_freezes_on_the_loops_next_step_once():
    observed: list[tuple[int, float]] = []
    timer = loopmonitor.GcTimer(lambda generation, seconds: observed.append((generation, seconds)),
                                freeze_after=0.0)  # every full collection counts as slow
    timer.install()
    try:
        frozen = gc.get_freeze_count()
        gc.collect()  # a full collection, timed by the hook
        assert timer.freeze_pending and timer.freezes == 0
        assert any(generation == 2 for generation, _ in observed)
        await asyncio.sleep(0)  # one loop step: the freeze was scheduled before this task's wake-up
        assert timer.freezes == 1 and not timer.freeze_pending
        assert gc.get_freeze_count() >= frozen
        # its own full collection after the freeze did not ask for another one
        await asyncio.sleep(0)
        assert timer.freezes == 1
    finally:
        timer.uninstall()


async def test_a_fast_full_collection_does_not_freeze():
    timer = loopmonitor.GcTimer(lambda generation, seconds: None, freeze_after=3600.0)
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
