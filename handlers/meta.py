"""GET /api/openapi.json (the API description) and GET /metrics (Prometheus)."""

from __future__ import annotations

import hmac
import json

from cyberhub.platform import openapi
from cyberhub.platform.errors import Unauthorized
from cyberhub.platform.metrics import CONTENT_TYPE
from cyberhub.platform.openapi import Operation, endpoints
from handlers.base import BaseHandler


class OpenApiHandler(BaseHandler):
    api = endpoints(get=Operation("This OpenAPI 3.1 document", None, tags=("meta",)))
    async def get(self) -> None:
        services = self.services
        if services.openapi_json is None:  # the document describes every route the app serves
            doc = openapi.build(services.api_routes)
            for adjust in services.api_document_hooks:  # what depends on this deployment's settings
                adjust(doc, services.settings)
            services.openapi_json = json.dumps(doc)
        self.finish(services.openapi_json)


class MetricsHandler(BaseHandler):
    api = endpoints(get=Operation("Prometheus metrics (bearer METRICS_TOKEN when configured)", None,
                                  errors=(401,), media_type=CONTENT_TYPE, tags=("meta",)))
    async def get(self) -> None:
        token = self.services.settings.metrics_token
        if token is not None:
            expected = f"Bearer {token.get_secret_value()}".encode()
            given = self.request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(expected, given):
                raise Unauthorized("Metrics need the metrics bearer token", code="invalid_token")
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.services.metrics.render())


default_handlers = [(r"/api/openapi.json", OpenApiHandler), (r"/metrics", MetricsHandler)]
