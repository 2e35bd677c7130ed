"""make_app(): routes + services -> tornado.web.Application."""

from __future__ import annotations

import tornado.web

from cyberhub.engineio_handler import tornado_handler
from cyberhub.logs import access_line
from cyberhub.openapi import openapi_path
from cyberhub.services import Services
from handlers import routes
from handlers.base import NotFoundHandler


def make_app(services: Services) -> tornado.web.Application:
    rules = [(r"/socket.io/", tornado_handler(services.sio)), *routes.all_routes()]
    # Metrics are labelled by route template, never by raw path (unbounded cardinality).
    route_of = {rule[1]: openapi_path(rule[0]) for rule in rules}

    def log_request(handler: tornado.web.RequestHandler) -> None:
        access_line(handler)
        services.metrics.observe_request(
            handler.request.method or "", route_of.get(type(handler), "unmatched"),
            handler.get_status(), handler.request.request_time(),
        )

    return tornado.web.Application(
        rules,
        services=services,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        compress_response=False,
        # Socket.IO frames are refused past the same size as polling bodies.
        websocket_max_message_size=services.settings.socket_max_buffer_bytes,
    )
