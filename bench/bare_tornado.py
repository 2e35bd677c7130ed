"""Bare Tornado serving fixed bytes: the yardstick for GET /api/cases.

    python bench/bare_tornado.py PORT BODY_FILE [OPEN_BODY_FILE] [--uvloop]

A stock `RequestHandler` on one process, Tornado's defaults (including its
per-response Etag hash), answering GET /api/cases with the file's bytes as
`application/json`. With OPEN_BODY_FILE, also POST /api/cases/open with those
bytes whatever the request (no parsing, no store): what Tornado alone costs per
opening, a ceiling for any handler on it. On asyncio's standard event loop (the
stock stack), or with --uvloop on the loop CyberHub runs on by default. Listens
on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import tornado.web


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--uvloop"]
    port, body = int(args[0]), Path(args[1]).read_bytes()
    opened = Path(args[2]).read_bytes() if len(args) > 2 else None

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

    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(serve())
    else:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
