"""Start-up and graceful shutdown, shared by run.py and the test suite."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import tornado.netutil

from cyberhub.accounts import users as accounts
from cyberhub.accounts.security import Passwords, Tokens
from cyberhub.chat.events import register_chat
from cyberhub.games.battles import events as battle_events
from cyberhub.games.battles import reveal as battle_reveal
from cyberhub.platform.metrics import Metrics
from cyberhub.platform.ratelimit import RateLimiter
from cyberhub.realtime.guard import GuardCollector
from cyberhub.realtime.loopmonitor import GcTimer, LoopLag, tune_gc
from cyberhub.realtime.sockets import Notifier, create_socket_server
from cyberhub.server import recovery
from cyberhub.server.app import make_app
from cyberhub.server.listener import FdGuard, GuardedHTTPServer
from cyberhub.store import db as dbmod
from handlers.services import Services
from settings import Settings

log = logging.getLogger("cyberhub.server")

# Bodies above MAX_BODY_BYTES are read and dropped (then refused with 413);
# above this the connection itself is dropped.
MAX_READ_BYTES = 2 * 1024 * 1024
BODY_TIMEOUT_SECONDS = 30.0  # a body trickling in slower than this is cut off


def build_services(settings: Settings, database: Any) -> Services:
    tokens = Tokens(settings.jwt_key, settings.jwt_ttl_seconds)
    limiter = RateLimiter(settings.rate_limit_rules(), redis_url=settings.redis_url,
                          enabled=settings.rate_limit_enabled)
    sio = create_socket_server(
        authenticate=lambda token: accounts.user_for_token(database, tokens, token),
        cors_origins=settings.cors_origin_list,
        ping_interval=settings.socket_ping_interval,
        ping_timeout=settings.socket_ping_timeout,
        max_buffer_bytes=settings.socket_max_buffer_bytes,
        redis_url=settings.redis_url,
        limiter=limiter,
        max_pending_bytes=settings.socket_max_pending_bytes,
        max_per_address=settings.socket_max_per_address,
        max_connections=settings.socket_max_connections,
    )
    passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        threads=settings.argon2_threads,
    )
    manager = sio.manager
    metrics = Metrics(connected_sockets=lambda: len(sio.eio.sockets),
                      socket_deliveries=lambda: {"fast": manager.fast_deliveries, "queued": manager.queued_deliveries},
                      rate_limits=limiter,
                      lost_relays=(lambda: manager.lost_relays) if settings.redis_url else None)
    metrics.registry.register(GuardCollector(manager.guard))  # cyberhub_socket_refusals_total
    notifier = Notifier(sio, metrics, live_feed_max_per_second=settings.live_feed_max_per_second)
    chat = register_chat(sio, database, authenticate=lambda token: accounts.user_for_token(database, tokens, token),
                         limiter=limiter, metrics=metrics, settings=settings)
    services = Services(settings=settings, db=database, tokens=tokens, passwords=passwords, sio=sio,
                        notifier=notifier, limiter=limiter, metrics=metrics, chat=chat)
    # Case battles: battle:watch/unwatch on the sockets, and the reveal loop.
    battle_events.register(sio, database, limiter)
    services.battles = battle_reveal.BattleRunner(database, battle_events.BattleEvents(sio, metrics), notifier,
                                                  settings.battle_round_seconds)
    return services


async def recover_battles(services: Services) -> None:
    settings = services.settings
    await battle_reveal.recover(services.db, services.battles, grace_seconds=settings.recovery_grace_seconds,
                                waiting_minutes=settings.battle_waiting_minutes)


async def wait_for_database(database: Any, limit_seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + limit_seconds
    while True:
        try:
            await dbmod.ping(database)
            return
        except dbmod.PyMongoError as exc:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            log.warning("Waiting for the database: %s", exc)
            await asyncio.sleep(1.0)


async def wait_for_redis(url: str, limit_seconds: float) -> None:
    """REDIS_URL set but unreachable: refuse to start, as for the database,
    rather than run with events silently not crossing processes."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    deadline = asyncio.get_running_loop().time() + limit_seconds
    try:
        while True:
            try:
                await client.ping()
                return
            except aioredis.RedisError as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    raise
                log.warning("Waiting for Redis: %s", type(exc).__name__)
                await asyncio.sleep(1.0)
    finally:
        await client.aclose()


async def bootstrap(services: Services) -> None:
    """Indexes, the configured admin, and a recovery pass — before listening."""
    settings = services.settings
    await dbmod.ensure_indexes(services.db, idempotency_ttl_seconds=settings.idempotency_ttl_hours * 3600)
    if settings.admin_username and settings.admin_password:
        await accounts.ensure_admin(
            services.db, services.passwords,
            username=settings.admin_username, password=settings.admin_password.get_secret_value(),
        )
    await recovery.recover_and_notify(services, grace_seconds=settings.recovery_grace_seconds)
    await services.chat.start()
    await recover_battles(services)


class Server:
    """A listening CyberHub server on the current IOLoop."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.http = GuardedHTTPServer(  # the accept loop keeps a descriptor reserve (server/listener.py)
            make_app(services), max_body_size=MAX_READ_BYTES, idle_connection_timeout=60,
            body_timeout=BODY_TIMEOUT_SECONDS,
            # Behind a proxy, the client IP (rate limits, logs) comes from X-Forwarded-For / X-Real-Ip.
            xheaders=services.settings.trust_proxy_headers,
        )
        self.http.fd_guard = FdGuard(services.sio.manager.guard.count)
        self.sockets: list[socket.socket] = []
        self._recovery_task: asyncio.Task | None = None
        metrics = services.metrics
        self.gc_timer = GcTimer(metrics.observe_gc)
        self.loop_lag = LoopLag(metrics.loop_lag.observe)

    @property
    def port(self) -> int:
        return self.sockets[0].getsockname()[1]

    def listen(self, port: int, host: str) -> None:
        self.sockets = tornado.netutil.bind_sockets(port, host, backlog=self.services.settings.listen_backlog)
        self.http.add_sockets(self.sockets)
        self._recovery_task = asyncio.create_task(self._recovery_loop())
        self.gc_timer.install()
        self.loop_lag.start()

    async def _recovery_loop(self) -> None:
        settings = self.services.settings
        while True:
            await asyncio.sleep(settings.recovery_interval_seconds)
            try:
                await recovery.recover_and_notify(self.services, grace_seconds=settings.recovery_grace_seconds)
                await recover_battles(self.services)
            except dbmod.PyMongoError as exc:
                log.warning("Recovery pass skipped, database error: %s", exc)
            except Exception:  # never let one bad pass end recovery for the process's lifetime
                log.exception("Recovery pass failed; trying again in %.0f s", settings.recovery_interval_seconds)

    async def shutdown(self) -> None:
        """Stop accepting, finish in-flight requests, tell sockets, then stop."""
        settings = self.services.settings
        self.http.stop()
        # A request whose body has not arrived has not started: refused now (503
        # shutting_down) rather than waited for, so one stalled client cannot
        # hold shutdown for SHUTDOWN_TIMEOUT_SECONDS.
        refused = self.services.inflight.refuse_unstarted()
        # Logged once the listener is closed (tests/test_shutdown.py waits for this line).
        log.info("Shutting down: no new connections; waiting for %d request(s) (%d refused, body not received)",
                 self.services.inflight.count, refused)
        if self._recovery_task:
            self._recovery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recovery_task
        if not await self.services.inflight.wait_idle(settings.shutdown_timeout_seconds):
            log.error("Shutdown timeout: %d request(s) still running", self.services.inflight.count)
        await self.services.battles.close()  # running battles stay running; the next process resumes them
        # After the requests, so that the events they emit still reach everyone.
        await self.services.chat.close()
        await self.services.sio.manager.drained()  # (emits do not wait for their broadcasts)
        await self._close_sockets()
        await self.services.sio.shutdown()
        self.services.sio.manager.pings.close()  # the websocket-first sockets' ping timer
        self.services.notifier.close()
        await self.loop_lag.stop()
        self.gc_timer.uninstall()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.http.close_all_connections(), 5)
        log.info("Shutdown complete")

    async def _close_sockets(self) -> None:
        """Tell every socket of this process that the server is going away.

        An engine.io close (not a Socket.IO "server disconnect") is what the
        clients see, so socket.io-client reconnects on its own — through the
        load balancer, to a process that is still running."""
        eio = self.services.sio.eio
        if not eio.sockets:  # engine.io's disconnect-all fails on an empty set
            return
        log.info("Closing %d socket(s)", len(eio.sockets))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(eio.disconnect(), 5)


async def start(settings: Settings, database: Any, *, port: int | None = None, host: str | None = None) -> Server:
    services = build_services(settings, database)
    await bootstrap(services)
    tune_gc()  # start-up is over: freeze what it built, so collections never scan it again
    server = Server(services)
    server.listen(settings.port if port is None else port, settings.host if host is None else host)
    return server
