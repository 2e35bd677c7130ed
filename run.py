"""Entry point: `python run.py` — settings from the environment / .env.

`python run.py --check-config` validates the settings exactly as a start would
(production refuses short secrets, CORS_ORIGINS=*, …) and exits: docker-compose
runs it before the backend, so a bad .env stops `up` with one clear message
instead of a restart loop.

Every start-up failure — bad settings, database or Redis unreachable, port in
use, SIGTERM / Ctrl-C before the server is up — is one log line and a
non-zero exit, never a traceback. A second SIGTERM / Ctrl-C during shutdown
ends the process at once (exit 4, logged).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys
from typing import Any

from pydantic import ValidationError

from cyberhub.platform.logs import configure_logging
from cyberhub.server.eventloop import EventLoopUnavailable, choose_event_loop, running_loop_name
from cyberhub.server.lifecycle import Server, start, wait_for_database, wait_for_redis
from cyberhub.store import db as dbmod
from settings import Settings

log = logging.getLogger("cyberhub")

EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_INTERRUPTED, EXIT_FORCED = 2, 1, 3, 4


class StartupFailed(Exception):
    """Start-up cannot go on; the message is the one line the operator reads."""

    def __init__(self, message: str, code: int = EXIT_UNAVAILABLE) -> None:
        super().__init__(message)
        self.code = code


def settings_problems(exc: ValidationError) -> list[str]:
    """Each problem as "PORT: ..." or "production requires ...". The values
    are never echoed (Settings hides its input in errors)."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in err["loc"]).upper()
        problems.append(f"{where}: {message}" if where else message)
    return problems


def load_settings() -> Settings:
    """Settings, or every problem in one line. A malformed value (PORT=abc)
    stops pydantic before the cross-field checks (secrets, production rules,
    the admin account): those are run again with the malformed ones at their
    defaults, so one round names everything to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = settings_problems(exc)
        malformed = {str(err["loc"][0]) for err in exc.errors() if err["loc"]} & set(Settings.model_fields)
        if malformed:
            defaults = {name: Settings.model_fields[name].get_default(call_default_factory=True) for name in malformed}
            try:
                Settings(**defaults)
            except ValidationError as rest:
                problems += [p for p in settings_problems(rest) if p not in problems]
        configure_logging()
        raise StartupFailed(f"Invalid settings: {'; '.join(problems)}", EXIT_CONFIG) from None


def check_stop_grace(settings: Settings, grace: str | None) -> None:
    """Compose passes its stop_grace_period (seconds) as STOP_GRACE_SECONDS:
    shutdown may wait SHUTDOWN_TIMEOUT_SECONDS for requests, then up to 10 s
    for sockets and connections; Docker must not kill it before that."""
    if grace is None:
        return
    if not grace.isascii() or not grace.isdigit():
        raise StartupFailed("STOP_GRACE_SECONDS must be a whole number of seconds", EXIT_CONFIG)
    needed = settings.shutdown_timeout_seconds + 15
    if int(grace) < needed:
        raise StartupFailed(
            f"STOP_GRACE_SECONDS ({grace}) must be at least SHUTDOWN_TIMEOUT_SECONDS + 15 ({needed:.0f}): "
            "Docker would kill the process while it is still finishing requests", EXIT_CONFIG)


async def start_up(settings: Settings) -> tuple[Server, Any]:
    try:
        store = dbmod.connect(settings.mongodb_uri, settings.mongodb_db, settings.mongodb_timeout_ms)
    except (dbmod.PyMongoError, ValueError) as exc:
        # The URI may hold a password: name the error, never the value.
        raise StartupFailed(f"Invalid MONGODB_URI: {type(exc).__name__}", EXIT_CONFIG) from None
    try:
        try:
            await wait_for_database(store.db, limit_seconds=60)
        except dbmod.PyMongoError as exc:
            raise StartupFailed(f"Database unreachable, giving up: {exc}") from None
        if settings.redis_url:
            try:
                await wait_for_redis(settings.redis_url, limit_seconds=60)
            except Exception as exc:
                raise StartupFailed(f"Redis (REDIS_URL) unreachable, giving up: {type(exc).__name__}") from None
        try:
            server = await start(settings, store.db)
        except dbmod.PyMongoError as exc:
            raise StartupFailed(f"Database error during start-up: {exc}") from None
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise StartupFailed(f"Cannot listen on {settings.host}:{settings.port}: {reason}") from None
        except Exception as exc:  # anything else while preparing: still one line, never a traceback
            raise StartupFailed(f"Start-up failed: {type(exc).__name__}: {exc}") from None
    except BaseException:
        store.close()
        raise
    return server, store


def exit_at_once(server: Server) -> None:
    """A second SIGINT/SIGTERM during shutdown: the operator wants it over now.
    Requests still running are abandoned (an interrupted money operation is
    finished or undone by recovery at the next start); exit code 4."""
    log.error("Second signal during shutdown: exiting at once, %d request(s) abandoned",
              server.services.inflight.count)
    logging.shutdown()  # flush the line above: os._exit skips every handler
    os._exit(EXIT_FORCED)


def main(argv: list[str]) -> int:
    """Settings first (the event loop is one of them), then the server on that loop."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        try:
            loop_factory = choose_event_loop(settings.event_loop)
        except EventLoopUnavailable as exc:
            raise StartupFailed(str(exc), EXIT_CONFIG) from None
        if "--check-config" in argv:
            check_stop_grace(settings, os.environ.get("STOP_GRACE_SECONDS"))
            log.info("Settings are valid (%s)", settings.environment)
            return 0
    except StartupFailed as exc:
        log.error("%s", exc)
        return exc.code
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(settings))


async def serve(settings: Settings) -> int:
    for name in settings.generated_secrets:
        log.warning("⚠️  %s is not set: using a random value for this run (development only)", name)
    if "*" in settings.cors_origin_list:
        log.warning("⚠️  CORS_ORIGINS='*': any origin may call this server (development only)")

    # Signals first: SIGTERM / Ctrl-C while waiting for the database ends start-up at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(start_up(settings))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        log.error("Stopped by a signal during start-up; the server never started")
        return EXIT_INTERRUPTED
    try:
        server, store = starting.result()
    except StartupFailed as exc:
        log.error("%s", exc)
        return exc.code
    log.info("✅ Server with WebSocket running on port %d (%s, event loop: %s)", server.port, settings.environment,
             running_loop_name())
    await stopping
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, exit_at_once, server)
    await server.shutdown()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
