"""GET /api/stats/public."""

from __future__ import annotations

from cyberhub.catalogue.models import PublicStatsResponse
from cyberhub.platform.openapi import Operation, endpoints
from handlers.base import BaseHandler


class PublicStatsHandler(BaseHandler):
    api = endpoints(get=Operation("Public statistics and recent drops", PublicStatsResponse, tags=("public",)))

    async def get(self) -> None:
        # Counts and drops are encoded once per computation; only `online` is per request.
        snapshot = await self.services.stats_cache.snapshot(self.db)
        online = self.notifier.connected_clients()
        self._etag = snapshot.etag(online)
        self.finish(snapshot.body(online))

    def compute_etag(self) -> str | None:
        return getattr(self, "_etag", None)


default_handlers = [(r"/api/stats/public", PublicStatsHandler)]
