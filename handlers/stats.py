"""GET /api/stats/public."""

from __future__ import annotations

from cyberhub import stats
from cyberhub.models import PublicStatsResponse
from handlers.base import BaseHandler


class PublicStatsHandler(BaseHandler):
    async def get(self) -> None:
        counts = await stats.counts(self.db)
        self.write_json(PublicStatsResponse(
            **counts, online=self.notifier.connected_clients(), recent_drops=await stats.recent_drops(self.db)
        ))


default_handlers = [(r"/api/stats/public", PublicStatsHandler)]
