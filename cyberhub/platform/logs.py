"""Logging set-up: the readable form with the seed's lines, or one JSON object
per line (LOG_FORMAT=json). Plus the one access line per request."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import tornado.web


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in ("request_id", "user_id", "method", "path", "status", "duration_ms"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Tornado's own access log is replaced by access_line below.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


access_log = logging.getLogger("cyberhub.access")


def access_line(handler: tornado.web.RequestHandler) -> None:
    """One line per request. The path is logged without its query string."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return  # e.g. LOG_LEVEL=WARNING: nothing to format
    duration_ms = round(1000.0 * handler.request.request_time(), 1)
    user = getattr(handler, "user", None)
    extra = {
        "request_id": getattr(handler, "request_id", None),
        "user_id": user["_id"] if user else None,
        "method": handler.request.method,
        "path": handler.request.path,
        "status": status,
        "duration_ms": duration_ms,
    }
    access_log.log(
        level, "%s %s %d %.1fms ip=%s rid=%s", handler.request.method, handler.request.path, status,
        duration_ms, handler.request.remote_ip, extra["request_id"], extra=extra,
    )
