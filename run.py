"""Entry point: `python run.py` — settings from the environment / .env."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from pydantic import ValidationError

from cyberhub import db as dbmod
from cyberhub.logs import configure_logging
from cyberhub.server import start, wait_for_database, wait_for_redis
from settings import Settings

log = logging.getLogger("cyberhub")


async def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        configure_logging()
        log.error("Invalid settings:\n%s", exc)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    for name in settings.generated_secrets:
        log.warning("⚠️  %s is not set: using a random value for this run (development only)", name)
    if "*" in settings.cors_origin_list:
        log.warning("⚠️  CORS_ORIGINS='*': any origin may call this server (development only)")

    try:
        store = dbmod.connect(settings.mongodb_uri, settings.mongodb_db, settings.mongodb_timeout_ms)
    except (dbmod.PyMongoError, ValueError) as exc:
        log.error("Invalid MONGODB_URI: %s", type(exc).__name__)  # the URI may hold a password
        return 2
    try:
        await wait_for_database(store.db, limit_seconds=60)
    except dbmod.PyMongoError as exc:
        log.error("Database unreachable, giving up: %s", exc)
        return 1
    if settings.redis_url:
        try:
            await wait_for_redis(settings.redis_url, limit_seconds=60)
        except Exception as exc:
            log.error("Redis (REDIS_URL) unreachable, giving up: %s", type(exc).__name__)
            return 1
    server = await start(settings, store.db)
    log.info("✅ Server with WebSocket running on port %d (%s)", server.port, settings.environment)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.shutdown()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
