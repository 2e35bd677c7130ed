"""Socket.IO: the server factory, connection auth, and the named emitters.

Contract (README.md, "Socket.IO"): `cases:updated` to everyone,
`balance:updated:<userId>` {balance} and `inventory:updated:<userId>` to room
`user:<userId>`, public `drop:new`. A socket authenticates with its JWT in the
handshake (`auth: {token}`) and joins only its own user's room.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from cyberhub.platform.errors import AppError, Forbidden, RateLimited, ServiceUnavailable
from cyberhub.platform.metrics import Metrics
from cyberhub.platform.ratelimit import RateLimiter
from cyberhub.realtime.admission import Admission
from cyberhub.realtime.admission import envelope as admission_envelope
from cyberhub.realtime.badinput import StrictPacket, guard_messages
from cyberhub.realtime.eviction import evict
from cyberhub.realtime.fanout import FastAsyncManager, FastRedisManager
from cyberhub.realtime.guard import SocketGuard
from cyberhub.realtime.livefeed import LiveFeed
from cyberhub.realtime.reaper import SessionReaper
from cyberhub.store.db import PyMongoError

log = logging.getLogger("cyberhub.realtime")

# The user a handshake token stands for (accounts.user_for_token, as for REST).
Authenticate = Callable[[str], Awaitable[dict]]


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def create_socket_server(
    *,
    authenticate: Authenticate,
    cors_origins: list[str],
    ping_interval: float,
    ping_timeout: float,
    max_buffer_bytes: int,
    redis_url: str | None = None,
    limiter: RateLimiter | None = None,
    max_pending_bytes: int | None = None,
    max_per_address: int = 0,
    max_connections: int = 0,
) -> socketio.AsyncServer:
    # The broadcast fast path (cyberhub/realtime/fanout.py), for this process's clients
    # and, with Redis, for events relayed from the other processes.
    manager = FastRedisManager(redis_url) if redis_url else FastAsyncManager()
    guard = manager.guard = SocketGuard()
    manager.max_pending_bytes = max_pending_bytes  # cyberhub/realtime/pending.py
    sio = socketio.AsyncServer(
        async_mode="tornado",
        client_manager=manager,
        cors_allowed_origins="*" if "*" in cors_origins else cors_origins,
        cors_credentials=True,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=max_buffer_bytes,
        serializer=StrictPacket,  # a client's malformed packets (cyberhub/realtime/badinput.py)
        # Loggers given as objects: the libraries then add no handler of their own
        # (with `False` each adds a bare StreamHandler: every error printed twice,
        # once without a timestamp). At ERROR: their per-packet INFO/WARNING lines
        # are a client's to trigger; what a client does wrong is logged once by
        # SocketGuard instead.
        logger=_library_logger("socketio.server"),
        engineio_logger=_library_logger("engineio.server"),
        monitor_clients=False,  # expiry on time instead (cyberhub/realtime/reaper.py)
    )
    manager.reaper = SessionReaper(sio.eio)
    manager.admission = Admission(lambda: sio.eio.sockets, per_address=max_per_address, total=max_connections)
    guard_messages(sio, guard, lambda eio_sid: evict(sio.eio, eio_sid, manager.websockets))
    _guard_sessions(sio, manager)
    _register_handlers(sio, authenticate, limiter, guard)
    return sio


def _library_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    return logger


def _guard_sessions(sio: socketio.AsyncServer, manager: FastAsyncManager) -> None:
    """Session limits in engine.io's connect event (cyberhub/realtime/admission.py),
    and the per-socket bookkeeping dropped in its disconnect event."""
    admission, guard = manager.admission, manager.guard
    on_connect, on_disconnect = sio.eio.handlers["connect"], sio.eio.handlers["disconnect"]

    async def connect(eio_sid: str, environ: dict) -> Any:
        handler = environ.get("tornado.handler")
        address = (handler.request.remote_ip if handler is not None else None) or "unknown"
        if handler is not None and hasattr(handler, "release_reservation"):
            handler.release_reservation()  # the handshake is a session now: counted as one below
        refusal = admission.admit(eio_sid, address)
        if refusal is not None:
            guard.count(refusal)
            return admission_envelope(refusal)[1]  # engine.io answers 401 with it
        return await on_connect(eio_sid, environ)

    async def disconnect(eio_sid: str, reason: Any) -> None:
        admission.forget(eio_sid)
        guard.forget(eio_sid)
        await on_disconnect(eio_sid, reason)

    sio.eio.on("connect", connect)
    sio.eio.on("disconnect", disconnect)


def _register_handlers(
    sio: socketio.AsyncServer,
    authenticate: Authenticate,
    limiter: RateLimiter | None,
    guard: SocketGuard,
) -> None:
    @sio.event
    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        user_id = None
        if token:
            try:
                user_id = (await authenticate(token))["_id"]
            except AppError as exc:
                log.info("⛔ Socket refused: %s (socket %s)", exc.message, sid)
                raise socketio.exceptions.ConnectionRefusedError(
                    f"Authentication error: {exc.message}"
                ) from None
            except PyMongoError as exc:
                log.warning("⛔ Socket refused, database error: %s (socket %s)", type(exc).__name__, sid)
                raise socketio.exceptions.ConnectionRefusedError(
                    "Service temporarily unavailable; try again"
                ) from None
        await sio.save_session(sid, {"userId": user_id, "token": token if user_id else None})
        if user_id:
            await sio.enter_room(sid, user_room(user_id))
        log.info("🟢 Client connected: %s%s", sid, f" user: {user_id}" if user_id else " (anonymous)")

    @sio.on("user:identify")
    async def identify(sid: str, data: Any = None) -> dict:
        if limiter is not None:
            try:
                await limiter.hit("socket_events", sid)
            except RateLimited as exc:
                guard.report(sid, "identify_refused", "flooding user:identify; refused (logged once)")
                return exc.envelope()
        session = await sio.get_session(sid)
        own_id = session.get("userId")
        wanted = data.get("userId") if isinstance(data, dict) else None
        if not own_id or wanted != own_id:
            reason = (
                "Connect with your token (auth: {token}) before identifying"
                if not own_id
                else "userId does not match the authenticated user"
            )
            guard.report(sid, "identify_refused", "identify refused: %s (logged once)", reason)
            return Forbidden(reason, code="identify_refused").envelope()
        try:
            # The token again: a suspension (or revocation) since the handshake
            # must not let the socket back into the room that was closed on it.
            await authenticate(session["token"])
        except AppError as exc:
            guard.report(sid, "identify_refused", "identify refused: %s (logged once)", exc.message)
            return exc.envelope()
        except PyMongoError:
            return ServiceUnavailable().envelope()
        await sio.enter_room(sid, user_room(own_id))
        log.info("👤 User identified: %s socket: %s", own_id, sid)
        return {"success": True}

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        guard.forget(sid)
        log.info("🔴 Client disconnected: %s reason: %s", sid, reason)


class Notifier:
    """Named emitters. Called only after the write they announce has succeeded;
    a failed emit is logged and never fails the request that caused it.

    `drop:new` and `upgrade:new` go through the live feed's one cap
    (cyberhub/realtime/livefeed.py, LIVE_FEED_MAX_PER_SECOND, both kinds in one
    window); every other event is sent at once."""

    def __init__(self, sio: socketio.AsyncServer, metrics: Metrics, *, live_feed_max_per_second: int = 0) -> None:
        self.sio = sio
        self.metrics = metrics  # counts every emitted event by name
        # One window for every public feed event: the cap is the feed's total.
        self.feed = LiveFeed(live_feed_max_per_second, self._broadcast_feed,
                             on_skipped=metrics.live_feed_skipped.inc)

    def connected_clients(self) -> int:
        return len(self.sio.eio.sockets)

    async def _emit(self, event: str, data: Any = None, *, room: str | None = None) -> None:
        # Through the client manager with wait=False (cyberhub/realtime/fanout.py):
        # the event takes its place in the delivery order now, after the write it
        # announces, and the request that caused it does not wait for a broadcast
        # to thousands of sockets to be written (AsyncServer.emit would).
        try:
            await self.sio.manager.emit(event, data, "/", room=room, wait=False)
        except Exception:  # the database write already happened; clients will refetch
            log.exception("Emit of %s failed", event)
            return
        self.metrics.emitted(event)

    async def cases_updated(self) -> None:
        await self._emit("cases:updated")
        log.info("🔥 WebSocket: cases:updated emitted")

    async def balance_updated(self, user_id: str, balance: int) -> None:
        await self._emit(f"balance:updated:{user_id}", {"balance": balance}, room=user_room(user_id))
        log.info("💰 WebSocket: balance updated for user %s", user_id)

    async def inventory_updated(self, user_id: str) -> None:
        await self._emit(f"inventory:updated:{user_id}", room=user_room(user_id))
        log.info("🎒 WebSocket: inventory updated for user %s", user_id)

    async def drop_new(self, drop: dict) -> None:
        """Broadcast now, later (the most valuable of its interval) or never (skipped)."""
        await self.feed.publish("drop:new", drop)

    async def _broadcast_feed(self, event: str, payload: dict) -> None:
        await self._emit(event, payload)
        if event == "drop:new":
            log.info("🎁 WebSocket: drop:new emitted (%s)", payload.get("caseName"))

    async def upgrade_new(self, payload: dict) -> None:
        """`upgrade:new` (the target's item; won or not), in drop:new's window."""
        await self.feed.publish("upgrade:new", payload)

    def close(self) -> None:
        self.feed.close()
