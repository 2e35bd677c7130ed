"""Mutes: `mutedUntil` on the user document.

Checked when a message is sent, from the user document the send reads anyway
(cyberhub/chat/events.py), so a mute or unmute made on one process is
honoured at once by every process of the same database; with REDIS_URL also
from Redis (MuteMirror, below).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from cyberhub.chat.models import iso
from cyberhub.platform.errors import Forbidden, NotFound
from cyberhub.platform.ids import as_utc, now
from cyberhub.store.db import Database, ReturnDocument

log = logging.getLogger("cyberhub.chat")


class Muted(Forbidden):
    code, message = "chat_muted", "You are muted in chat"

    def __init__(self, until: datetime) -> None:
        super().__init__()
        self.until = until

    def envelope(self) -> dict:
        return {**super().envelope(), "until": iso(self.until)}


def check_not_muted(user: dict, at: datetime | None = None) -> None:
    until = as_utc(user.get("mutedUntil"))
    if until is not None and until > (at or now()):
        raise Muted(until)


async def _set(db: Database, user_id: str, until: datetime | None, projection: dict | None) -> dict:
    doc = await db.users.find_one_and_update({"_id": user_id}, {"$set": {"mutedUntil": until}},
                                             projection=projection, return_document=ReturnDocument.AFTER)
    if doc is None:
        raise NotFound("User not found", code="user_not_found")
    return doc


async def mute(db: Database, *, user_id: str, minutes: int, projection: dict | None = None) -> dict:
    """Mutes for `minutes` from now (a new mute replaces the previous one)."""
    return await _set(db, user_id, now() + timedelta(minutes=minutes), projection)


async def unmute(db: Database, *, user_id: str, projection: dict | None = None) -> dict:
    return await _set(db, user_id, None, projection)


class MuteMirror:
    """With REDIS_URL: every mute also as a Redis key that expires with it, so a
    mute made on one process is honoured by every process even where they do
    not share one database (each on its own embedded store). Processes that
    share MongoDB see `mutedUntil` anyway; this is the belt to those braces.
    If Redis fails, the user document alone decides (with a warning)."""

    PREFIX = "cyberhub:chat:muted:"

    def __init__(self, redis_url: str | None) -> None:
        self.client: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self.client = aioredis.from_url(redis_url)

    async def set(self, user_id: str, until: datetime | None) -> None:
        if self.client is None:
            return
        try:
            if until is None:
                await self.client.delete(self.PREFIX + user_id)
            else:
                ms = int((until - now()).total_seconds() * 1000)
                if ms > 0:
                    await self.client.set(self.PREFIX + user_id, iso(until), px=ms)
        except Exception as exc:
            log.warning("Chat mute not mirrored to Redis: %s", type(exc).__name__)

    async def check(self, user_id: str) -> None:
        if self.client is None:
            return
        try:
            value = await self.client.get(self.PREFIX + user_id)
        except Exception as exc:
            log.warning("Chat mutes in Redis unreadable: %s", type(exc).__name__)
            return
        if value:
            until = datetime.fromisoformat(value.decode().replace("Z", "+00:00"))
            check_not_muted({"mutedUntil": until})

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
