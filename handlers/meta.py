"""GET /api/openapi.json — the API description, generated at start-up."""

from __future__ import annotations

import json

from cyberhub import openapi
from handlers.base import BaseHandler


class OpenApiHandler(BaseHandler):
    async def get(self) -> None:
        services = self.services
        if services.openapi_json is None:
            from handlers.routes import all_routes  # the document describes every route

            services.openapi_json = json.dumps(openapi.build(all_routes()))
        self.finish(services.openapi_json)


default_handlers = [(r"/api/openapi.json", OpenApiHandler)]
