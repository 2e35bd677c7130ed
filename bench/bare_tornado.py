"""Bare Tornado serving fixed bytes: the yardstick for GET /api/cases.

    python bench/bare_tornado.py PORT BODY_FILE [OPEN_BODY_FILE]

A stock `RequestHandler` on one process, Tornado's defaults (including its
per-response Etag hash), answering GET /api/cases with the file's bytes as
`application/json`. With OPEN_BODY_FILE, also POST /api/cases/open with those
bytes whatever the request (no parsing, no store): what Tornado alone costs per
opening, a ceiling for any handler on it. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import tornado.web


def main() -> None:
    port, body = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()
    opened = Path(sys.argv[3]).read_bytes() if len(sys.argv) > 3 else None

    class Cases(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.write(body)

    class Open(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.write(opened)

    async def serve() -> None:
        routes = [(r"/api/cases", Cases)] + ([(r"/api/cases/open", Open)] if opened is not None else [])
        tornado.web.Application(routes).listen(port, address="127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
