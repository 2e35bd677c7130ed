"""GET /health: liveness plus a database ping, and the Redis relay's state.

Only the database decides 200 / 503: Redis (REDIS_URL) is optional to the
service — without it REST and this process's sockets keep working, limits
fall back to per-process counters, only the relay to other processes stops —
so a Redis outage must not take every backend out of a health-checking
balancer at once. It shows as `"relay": "down"` instead."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from cyberhub.platform.models import HealthResponse
from cyberhub.platform.openapi import Operation, endpoints
from cyberhub.store.db import PyMongoError, ping
from handlers.base import BaseHandler

REDIS_CHECK_SECONDS = 1.0  # a Redis that hangs must not make /health hang


class HealthHandler(BaseHandler):
    api = endpoints(get=Operation("Liveness and database reachability (503 when degraded); the Redis relay's "
                                  "state in `relay`", HealthResponse, same_shape_statuses=(503,), tags=("meta",)))
    async def get(self) -> None:
        try:
            await ping(self.db)
            status = "ok"
        except PyMongoError:
            status = "degraded"
        relay = await self._relay()
        # The HealthResponse shape, formatted directly: this is polled often, and
        # its body changes every millisecond, so it gets no ETag either.
        clients = int(self.notifier.connected_clients())
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.set_status(200 if status == "ok" else 503)
        self.finish(f'{{"status":"{status}","websocket":"active","relay":"{relay}","clients":{clients},'
                    f'"timestamp":"{stamp}"}}')

    async def _relay(self) -> str:
        """"local" without REDIS_URL (one process), else "up" or "down"."""
        if not self.services.settings.redis_url:
            return "local"
        try:
            up = await asyncio.wait_for(self.services.limiter.healthy(), REDIS_CHECK_SECONDS)
        except TimeoutError:
            up = False
        return "up" if up else "down"

    def compute_etag(self) -> str | None:
        return None


default_handlers = [(r"/health", HealthHandler)]
