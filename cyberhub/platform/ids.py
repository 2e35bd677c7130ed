"""Identifiers and timestamps shared by every document."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    """Current UTC time at millisecond precision, as MongoDB stores it."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def as_utc(value: datetime | None) -> datetime | None:
    """Stored datetimes come back naive (UTC); make them explicit for output."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
