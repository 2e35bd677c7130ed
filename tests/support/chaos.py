"""A test-only proxy around the database (the embedded store or a real one).

- Every call first yields to the event loop for a few turns (a seeded
  pseudo-random number, like a network round-trip), so concurrent requests
  really interleave even on the embedded store, whose calls never yield.
- A fault plan can make the N-th write (counted from `arm()`) fail, either
  before it reaches the store or after it was applied (the reply "lost").
- `down = True` makes every call fail as if the server were unreachable.
- `hold(collection, method)` stalls the next such call before it reaches the
  store until `resume()`: a request stuck in the network, deterministically.

The application code runs unchanged on top of it; only the store is wrapped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

T = TypeVar("T")

WRITES = {
    "insert_one", "insert_many", "update_one", "update_many", "replace_one",
    "delete_one", "delete_many", "find_one_and_update", "find_one_and_delete", "find_one_and_replace",
}
READS = {"find_one", "count_documents", "estimated_document_count", "distinct"}
ADMIN = {"create_index", "create_indexes", "drop", "drop_indexes"}


class InjectedFault(AutoReconnect):
    """What an injected failure raises: a connection error, as in production."""


@dataclass
class Chaos:
    yield_each_call: bool = True
    max_turns: int = 25  # loop turns a call may take, drawn from a seeded RNG
    rng: random.Random = field(default_factory=lambda: random.Random(20261121))
    down: bool = False
    fail_write: int | None = None  # 1-based index of the write to fail, counted from arm()
    fail_after_apply: bool = False  # fail after the write took effect (reply lost)
    writes: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # every call since arm(), reads too
    write_args: list[tuple[str, str, tuple]] = field(default_factory=list)  # (collection, method, args) since arm()
    armed: bool = False
    tripped: bool = False
    held_call: tuple[str, str] | None = None
    holding: asyncio.Event = field(default_factory=asyncio.Event)  # set once the held call is waiting
    _resume: asyncio.Event = field(default_factory=asyncio.Event)

    def hold(self, collection: str, method: str) -> None:
        self.held_call = (collection, method)
        self.holding.clear()
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def arm(self, fail_write: int | None = None, *, after_apply: bool = False) -> None:
        self.writes.clear()
        self.calls.clear()
        self.write_args.clear()
        self.armed = True
        self.tripped = False
        self.fail_write = fail_write
        self.fail_after_apply = after_apply

    def disarm(self) -> None:
        self.armed = False
        self.fail_write = None

    async def record(self, action: Awaitable[T]) -> tuple[T, list[tuple[str, str]]]:
        """Runs `action` without a fault and returns what it returned and the
        writes it made (the clean run that `failure_points` then cuts off)."""
        self.arm()
        try:
            result = await action
            return result, list(self.writes)
        finally:
            self.disarm()

    async def cut_off(self, point: FailurePoint, action: Awaitable[T]) -> T:
        """Runs `action` with the store failing at `point`; the fault must have
        been hit. Returns what `action` returned."""
        self.arm(point.index, after_apply=point.after_apply)
        try:
            result = await action
        finally:
            self.disarm()
        assert self.tripped, point.where
        return result

    async def before(self, collection: str, method: str) -> bool:
        """Returns True if this call must fail after it is applied."""
        if self.yield_each_call:
            for _ in range(self.rng.randint(1, self.max_turns)):
                await asyncio.sleep(0)
        if self.down:
            raise ServerSelectionTimeoutError("test: the store is down")
        if self.held_call == (collection, method):
            self.held_call = None
            self.holding.set()
            await self._resume.wait()
        if self.armed:
            self.calls.append((collection, method))
        if not self.armed or method not in WRITES:
            return False
        self.writes.append((collection, method))
        if self.fail_write is not None and len(self.writes) == self.fail_write:
            self.tripped = True
            if not self.fail_after_apply:
                raise InjectedFault(f"test: injected fault before write #{self.fail_write} {collection}.{method}")
            return True
        return False


class ChaosCursor:
    def __init__(self, cursor: Any, chaos: Chaos, name: str) -> None:
        self._cursor, self._chaos, self._name = cursor, chaos, name

    def sort(self, *args: Any, **kwargs: Any) -> ChaosCursor:
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def limit(self, n: int) -> ChaosCursor:
        self._cursor = self._cursor.limit(n)
        return self

    def skip(self, n: int) -> ChaosCursor:
        self._cursor = self._cursor.skip(n)
        return self

    async def to_list(self, length: int | None = None) -> list:
        await self._chaos.before(self._name, "to_list")
        return await self._cursor.to_list(length)


class ChaosCollection:
    def __init__(self, collection: Any, name: str, chaos: Chaos) -> None:
        self._collection, self._name, self._chaos = collection, name, chaos

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._collection, attr)
        if attr in WRITES | READS | ADMIN:
            async def call(*args: Any, **kwargs: Any) -> Any:
                fail_after = await self._chaos.before(self._name, attr)
                if self._chaos.armed and attr in WRITES:
                    self._chaos.write_args.append((self._name, attr, args))
                result = await target(*args, **kwargs)
                if fail_after:
                    raise InjectedFault(f"test: reply lost after {self._name}.{attr}")
                return result
            return call
        if attr in ("find", "aggregate"):
            return lambda *args, **kwargs: ChaosCursor(target(*args, **kwargs), self._chaos, self._name)
        return target


class ChaosDatabase:
    def __init__(self, db: Any, chaos: Chaos) -> None:
        self._db, self.chaos = db, chaos

    def __getattr__(self, name: str) -> ChaosCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        return ChaosCollection(getattr(self._db, name), name, self.chaos)

    def __getitem__(self, name: str) -> ChaosCollection:
        return ChaosCollection(self._db[name], name, self.chaos)

    async def command(self, *args: Any, **kwargs: Any) -> Any:
        await self.chaos.before("$cmd", "command")
        return await self._db.command(*args, **kwargs)


@dataclass(frozen=True)
class FailurePoint:
    """One place to cut an operation off: `arm(index, after_apply=...)`."""

    n: int  # 1, 2, ...: the how-manieth point (tests set up fresh data per point)
    index: int  # the 1-based write to fail
    after_apply: bool  # after the write took effect (its reply lost), else before
    where: str  # for assertion messages


def assert_store_outage_answer(reply: Any, point: FailurePoint) -> None:
    """A request cut off by the store: 503 database_unavailable."""
    assert reply.status == 503 and reply.body["code"] == "database_unavailable", (point.where, reply)


def failure_points(writes: list[tuple[str, str]]) -> Iterator[FailurePoint]:
    """Every place an operation whose clean run made `writes` can be cut off:
    before each of its writes, and after each with the reply lost."""
    n = 0
    for index in range(1, len(writes) + 1):
        for after_apply in (False, True):
            n += 1
            yield FailurePoint(n, index, after_apply,
                               f"{'after' if after_apply else 'before'} write #{index} {writes[index - 1]}")
