"""Bare Tornado serving fixed bytes: the yardstick for GET /api/cases.

    python bench/bare_tornado.py PORT BODY_FILE

A stock `RequestHandler` on one process, Tornado's defaults (including its
per-response Etag hash), answering GET /api/cases with the file's bytes as
`application/json`. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import tornado.web


def main() -> None:
    port, body = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()

    class Cases(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.write(body)

    async def serve() -> None:
        tornado.web.Application([(r"/api/cases", Cases)]).listen(port, address="127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
