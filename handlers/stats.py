"""GET /api/stats/public."""

from __future__ import annotations

from cyberhub.models import PublicStatsResponse
from cyberhub.openapi import Operation, endpoints
from handlers.base import BaseHandler


class PublicStatsHandler(BaseHandler):
    api = endpoints(get=Operation("Public statistics and recent drops", PublicStatsResponse, tags=("public",)))

    async def get(self) -> None:
        counts, drops = await self.services.stats_cache.get(self.db)
        self.write_json(
            PublicStatsResponse(
                **counts, online=self.notifier.connected_clients(), recent_drops=drops
            )
        )


default_handlers = [(r"/api/stats/public", PublicStatsHandler)]
