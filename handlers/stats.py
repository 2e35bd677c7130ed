"""GET /api/stats/public."""

from __future__ import annotations

from cyberhub import stats
from cyberhub.models import PublicStatsResponse
from cyberhub.openapi import Operation, endpoints
from handlers.base import BaseHandler


class PublicStatsHandler(BaseHandler):
    api = endpoints(get=Operation("Public statistics and recent drops", PublicStatsResponse, tags=("public",)))

    async def get(self) -> None:
        counts = await stats.counts(self.db)
        self.write_json(
            PublicStatsResponse(
                **counts, online=self.notifier.connected_clients(), recent_drops=await stats.recent_drops(self.db)
            )
        )


default_handlers = [(r"/api/stats/public", PublicStatsHandler)]
