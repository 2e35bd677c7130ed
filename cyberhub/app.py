"""make_app(): routes + services -> tornado.web.Application."""

from __future__ import annotations

import tornado.web

from cyberhub.logs import access_line
from cyberhub.realtime import tornado_handler
from cyberhub.services import Services
from handlers import routes
from handlers.base import NotFoundHandler


def make_app(services: Services) -> tornado.web.Application:
    return tornado.web.Application(
        [(r"/socket.io/", tornado_handler(services.sio)), *routes.all_routes()],
        services=services,
        default_handler_class=NotFoundHandler,
        log_function=access_line,
        compress_response=False,
    )
