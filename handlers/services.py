"""The process-wide objects handlers need, built once and passed to the app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import socketio

from cyberhub.accounts.security import Passwords, Tokens
from cyberhub.catalogue.cache import CatalogueCache
from cyberhub.catalogue.public_stats import PublicStatsCache
from cyberhub.chat.events import Chat
from cyberhub.games.battles.reveal import BattleRunner
from cyberhub.platform.metrics import Metrics
from cyberhub.platform.ratelimit import RateLimiter
from cyberhub.realtime.sockets import Notifier
from settings import Settings


class InFlight:
    """The REST requests being handled, so shutdown can wait for them — and
    refuse at once those whose body has not arrived (they have not started)."""

    def __init__(self) -> None:
        self.requests: set[Any] = set()  # BaseHandler instances
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return len(self.requests)

    def enter(self, request: Any) -> None:
        self.requests.add(request)
        self._idle.clear()

    def leave(self, request: Any) -> None:
        self.requests.discard(request)
        if not self.requests:
            self._idle.set()

    def refuse_unstarted(self) -> int:
        """Answers 503 to every request still waiting for its body; their count."""
        return sum(1 for request in list(self.requests) if request.refuse_if_unstarted())

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
    chat: Chat
    inflight: InFlight = field(default_factory=InFlight)
    api_routes: list[tuple] = field(default_factory=list)  # the REST routes, set by make_app
    api_document_hooks: list = field(default_factory=list)  # adjust_document(doc, settings) hooks, likewise
    openapi_json: str | None = None  # built from api_routes on first request
    catalogue_cache: CatalogueCache = field(default_factory=CatalogueCache)
    stats_cache: PublicStatsCache = field(default_factory=PublicStatsCache)
    battles: BattleRunner | None = None  # case battles' reveal loop, set by build_services

    def cors_allows(self, origin: str) -> bool:
        allowed = self.settings.cors_origin_list
        return "*" in allowed or origin in allowed
