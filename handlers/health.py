"""GET /health: liveness plus a database ping."""

from __future__ import annotations

from datetime import UTC, datetime

from cyberhub.platform.models import HealthResponse
from cyberhub.platform.openapi import Operation, endpoints
from cyberhub.store.db import PyMongoError, ping
from handlers.base import BaseHandler


class HealthHandler(BaseHandler):
    api = endpoints(get=Operation("Liveness and database reachability (503 when degraded)", HealthResponse,
                                  same_shape_statuses=(503,), tags=("meta",)))
    async def get(self) -> None:
        try:
            await ping(self.db)
            status = "ok"
        except PyMongoError:
            status = "degraded"
        # With REDIS_URL, events between processes and shared limits depend on Redis.
        if status == "ok" and self.services.settings.redis_url and not await self.services.limiter.healthy():
            status = "degraded"
        # The HealthResponse shape, formatted directly: this is polled often, and
        # its body changes every millisecond, so it gets no ETag either.
        clients = int(self.notifier.connected_clients())
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.set_status(200 if status == "ok" else 503)
        self.finish(f'{{"status":"{status}","websocket":"active","clients":{clients},"timestamp":"{stamp}"}}')

    def compute_etag(self) -> str | None:
        return None


default_handlers = [(r"/health", HealthHandler)]
