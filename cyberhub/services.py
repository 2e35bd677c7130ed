"""The process-wide objects handlers need, built once and passed to the app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import socketio

from cyberhub.catalogue_cache import CatalogueCache
from cyberhub.metrics import Metrics
from cyberhub.ratelimit import RateLimiter
from cyberhub.realtime import Notifier
from cyberhub.security import Passwords, Tokens
from cyberhub.stats import PublicStatsCache
from settings import Settings


class InFlight:
    """Counts REST requests being handled, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count = max(0, self.count - 1)
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, limit_seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), limit_seconds)
            return True
        except TimeoutError:
            return False


@dataclass
class Services:
    settings: Settings
    db: Any
    tokens: Tokens
    passwords: Passwords
    sio: socketio.AsyncServer
    notifier: Notifier
    limiter: RateLimiter
    metrics: Metrics
    inflight: InFlight = field(default_factory=InFlight)
    openapi_json: str | None = None  # built on first request
    catalogue_cache: CatalogueCache = field(default_factory=CatalogueCache)
    stats_cache: PublicStatsCache = field(default_factory=PublicStatsCache)

    def cors_allows(self, origin: str) -> bool:
        allowed = self.settings.cors_origin_list
        return "*" in allowed or origin in allowed
