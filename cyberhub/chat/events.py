"""`chat:send` on the Socket.IO server, and the chat's two broadcasts.

A message is refused, in this order, with the error envelope: anonymous
socket (login_required), bad text (validation_error), a link
(chat_link_refused), token no longer valid or account suspended (checked now,
not only at connect: account_suspended), muted (chat_muted + until), too
little deposited (chat_not_eligible), over RATE_LIMIT_CHAT_PER_USER
(rate_limited), the whole site over CHAT_MAX_PER_SECOND (chat_slow_mode +
retryAfterMs). A refused message counts against no limit.

An accepted message is stored, then broadcast as `chat:message` — like
`drop:new`, one emit to everyone through the fast fan-out path
(cyberhub/realtime/fanout.py: one encoding, one frame) — and acked. The ack
does not wait for the broadcast to reach every socket (thousands of them,
written a slice per event-loop step); CHAT_MAX_PER_SECOND is what bounds the
broadcasts waiting their turn, so per-user events queued behind them stay
prompt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import socketio

from cyberhub.chat import messages
from cyberhub.chat.eligibility import Eligibility
from cyberhub.chat.moderation import MuteMirror, check_not_muted
from cyberhub.platform.errors import AppError, RateLimited, ServiceUnavailable, Unauthorized
from cyberhub.platform.metrics import Metrics
from cyberhub.platform.ratelimit import RateLimiter
from cyberhub.store.db import Database, PyMongoError

log = logging.getLogger("cyberhub.chat")

USER_RULE = "chat_per_user"  # RATE_LIMIT_CHAT_PER_USER (settings.rate_limit_rules)
SITE_RULE, SITE_KEY = "chat_site", "site"


class SlowMode(AppError):
    status, code, message = 429, "chat_slow_mode", "Chat is busy; try again shortly"

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__()
        self.retry_after_ms = retry_after_ms

    def envelope(self) -> dict:
        return {**super().envelope(), "retryAfterMs": self.retry_after_ms}


@dataclass(frozen=True)
class ChatConfig:
    max_length: int
    max_per_second: int
    min_deposited: int
    history_size: int
    redis_url: str | None = None

    @classmethod
    def of(cls, settings: Any) -> ChatConfig:
        """From the service's settings (CHAT_* and REDIS_URL)."""
        return cls(max_length=settings.chat_max_length, max_per_second=settings.chat_max_per_second,
                   min_deposited=settings.chat_min_deposited, history_size=settings.chat_history_size,
                   redis_url=settings.redis_url)


class Chat:
    def __init__(self, sio: socketio.AsyncServer, db: Database, *,
                 authenticate: Callable[[str], Awaitable[dict]], limiter: RateLimiter, metrics: Metrics,
                 config: ChatConfig) -> None:
        self.sio, self.db, self.authenticate = sio, db, authenticate
        self.limiter, self.metrics, self.config = limiter, metrics, config
        self.eligibility = Eligibility(db, config.min_deposited)
        # The site-wide cap is a capacity guard, not an abuse limit: on even with
        # RATE_LIMIT_ENABLED=false; with REDIS_URL one window for every process
        # (each of them broadcasts every message).
        self.site = (RateLimiter({SITE_RULE: f"{config.max_per_second}/second"}, redis_url=config.redis_url)
                     if config.max_per_second > 0 else None)
        self.mutes = MuteMirror(config.redis_url)
        self._broadcasts: set[asyncio.Task] = set()

    def register(self) -> Chat:
        self.sio.on("chat:send", self.on_send)
        return self

    async def start(self) -> None:
        """At start-up, before listening."""
        await messages.trim_history(self.db, self.config.history_size)

    # --- chat:send --------------------------------------------------------------------------
    async def on_send(self, sid: str, data: Any = None) -> dict:
        try:
            return {"success": True, "message": await self.send(sid, data)}
        except AppError as exc:
            return exc.envelope()
        except PyMongoError as exc:
            log.warning("chat:send refused, database error: %s (socket %s)", type(exc).__name__, sid)
            return ServiceUnavailable().envelope()
        except Exception:
            log.exception("chat:send failed (socket %s)", sid)
            return AppError().envelope()

    async def send(self, sid: str, data: Any) -> dict:
        session = await self.sio.get_session(sid)
        token = session.get("token") if isinstance(session, dict) else None
        if not token:
            raise Unauthorized("Connect with your token (auth: {token}) to chat", code="login_required")
        text = messages.clean_text(data.get("text") if isinstance(data, dict) else None, self.config.max_length)
        # The user document, read now: suspension, revocation and mutes made on
        # any process since the handshake count.
        user = await self.authenticate(token)
        check_not_muted(user)
        await self.mutes.check(user["_id"])
        await self.eligibility.check(user["_id"])
        await self._admit(user["_id"])
        doc = await messages.store(self.db, user_id=user["_id"], username=user["username"], text=text,
                                   history_size=self.config.history_size)
        message = messages.public_message(doc)
        self.broadcast("chat:message", message)
        return message

    async def _admit(self, user_id: str) -> None:
        """The per-user limit, then the site-wide one; only an admitted message
        is counted. The user's hit comes first and is atomic (a check, then a
        count after an await, let concurrent sends all pass); a message the
        site then refuses gives that hit back."""
        await self.limiter.hit(USER_RULE, user_id)  # raises (and counts the refusal) when over
        if self.site is None:
            return
        try:
            await self.site.hit(SITE_RULE, SITE_KEY)
        except RateLimited:
            await self.limiter.give_back(USER_RULE, user_id)
            wait = await self.site.retry_after_seconds(SITE_RULE, SITE_KEY)
            raise SlowMode(max(1, round(wait * 1000))) from None

    # --- broadcasts -------------------------------------------------------------------------
    def broadcast(self, event: str, data: dict) -> None:
        """To every socket (every process with REDIS_URL), without waiting for
        the delivery; started in call order, so sockets see messages in order."""
        task = asyncio.ensure_future(self._emit(event, data))
        self._broadcasts.add(task)
        task.add_done_callback(self._broadcasts.discard)

    async def _emit(self, event: str, data: dict) -> None:
        try:
            await self.sio.emit(event, data)
        except Exception:  # the message is stored; clients see it in the history
            log.exception("Emit of %s failed", event)
            return
        self.metrics.emitted(event)

    def removed(self, public_id: str) -> None:
        self.broadcast("chat:removed", {"id": public_id})

    async def close(self) -> None:
        """Shutdown: the broadcasts started so far finish first."""
        if self._broadcasts:
            await asyncio.gather(*self._broadcasts, return_exceptions=True)
        await self.mutes.close()


def register_chat(sio: socketio.AsyncServer, db: Database, *, authenticate: Callable[[str], Awaitable[dict]],
                  limiter: RateLimiter, metrics: Metrics, settings: Any) -> Chat:
    """The server wiring's one call: `chat:send` on `sio`, configured from settings."""
    return Chat(sio, db, authenticate=authenticate, limiter=limiter, metrics=metrics,
                config=ChatConfig.of(settings)).register()
