"""Which asyncio event loop the server runs on (setting EVENT_LOOP).

Tornado runs on whatever asyncio loop is current, so the choice is made once,
before the loop starts (run.py). uvloop is libuv's loop in C: accepting,
reading and writing connections and dispatching their callbacks cost less
than in the standard library's selector loop. Measured in paired runs
(bench/README.md, "Issue 18, third session"): while 5,000 default clients
connect, a quarter of the loop-lag samples over 40 ms, and ~10 % less time
in two pairs of three. Nothing in this project reaches
into a loop's internals. The test suite runs on the loop chosen here
(tests/conftest.py), so on uvloop by default, and `EVENT_LOOP=asyncio python -m
pytest` runs all of it on the standard loop. Two differences met so far: uvloop's
`loop.time()` has millisecond resolution (deadlines use `time.monotonic`),
and its timers are as coarse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopUnavailable(Exception):
    """EVENT_LOOP names a loop this installation does not have."""


def choose_event_loop(choice: str) -> LoopFactory:
    """The loop factory for EVENT_LOOP=auto|uvloop|asyncio.

    "auto" takes uvloop when it is importable (it is in requirements.txt for
    Linux and macOS) and the standard loop otherwise, e.g. on Windows."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise EventLoopUnavailable(
                    "EVENT_LOOP=uvloop but uvloop is not installed (pip install -r requirements.txt)") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def running_loop_name() -> str:
    """The loop actually running, for the start-up line: checked, not assumed."""
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        import uvloop

        return f"uvloop {uvloop.__version__}"
    return "asyncio"
