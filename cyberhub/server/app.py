"""make_app(): routes + services -> tornado.web.Application."""

from __future__ import annotations

import tornado.web

from cyberhub.platform.logs import access_line
from cyberhub.platform.openapi import openapi_path
from cyberhub.realtime.engineio_handler import tornado_handler
from cyberhub.realtime.polling import PollingRequests
from handlers import routes
from handlers.base import NotFoundHandler
from handlers.services import Services


def make_app(services: Services) -> tornado.web.Application:
    services.api_routes = routes.all_routes()
    services.api_document_hooks = routes.document_hooks()
    handled = [(r"/socket.io/", tornado_handler(services.sio)), *services.api_routes]
    # Metrics are labelled by route template, never by raw path (unbounded cardinality).
    route_of = {rule[1]: openapi_path(rule[0]) for rule in handled}
    # engine.io's polling requests first, without a RequestHandler (cyberhub/realtime/polling.py);
    # websocket upgrades on /socket.io/ fall through to the handler.
    polling = PollingRequests(services.sio, services.metrics.observe_request).rule()

    def log_request(handler: tornado.web.RequestHandler) -> None:
        access_line(handler)
        services.metrics.observe_request(
            handler.request.method or "", route_of.get(type(handler), "unmatched"),
            handler.get_status(), handler.request.request_time(),
        )

    return tornado.web.Application(
        [polling, *handled],
        services=services,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        compress_response=False,
        # Socket.IO frames are refused past the same size as polling bodies.
        websocket_max_message_size=services.settings.socket_max_buffer_bytes,
    )
