"""Identifiers and timestamps shared by every document."""

from __future__ import annotations

import itertools
import os
import secrets
import time
import uuid
from datetime import UTC, datetime


def new_id() -> str:
    return uuid.uuid4().hex


_made = itertools.count()


def ordered_id() -> str:
    """An id that sorts in the order this process made it, 32 hex digits like
    new_id(): the wall-clock milliseconds (12), a per-process counter (8) and
    random (12). Lists of records newest first go by (time, `_id`)
    (platform/pages.py), and records are timed to the millisecond: two made in
    the same millisecond — a payment provider's retries, a burst of webhooks —
    then keep the order they arrived in instead of a random one."""
    return f"{time.time_ns() // 1_000_000:012x}{next(_made) & 0xFFFFFFFF:08x}{secrets.token_hex(6)}"


class _RequestIds:
    """Request ids: a random per-process prefix and a counter, 16 hex digits.
    They only correlate log lines, so they need to be unique, not
    unguessable; uuid4 (a urandom read per request) cost more than the rest
    of the request id handling together (bench/README.md, issue 18 item 4)."""

    def __init__(self) -> None:
        self.reset()
        # A forked child must not repeat its parent's ids.
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(4)
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFF:08x}"


request_id = _RequestIds().next


def now() -> datetime:
    """Current UTC time at millisecond precision, as MongoDB stores it."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def as_utc(value: datetime | None) -> datetime | None:
    """Stored datetimes come back naive (UTC); make them explicit for output."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
