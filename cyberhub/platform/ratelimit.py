"""Abuse limits (the `limits` library): per user and per IP on auth, open,
claim and fair endpoints, failed logins per username, and socket events per
socket. With REDIS_URL set the counters live in Redis, so every process
behind the load balancer shares them; otherwise in this process's memory."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from cyberhub.platform.errors import RateLimited

log = logging.getLogger("cyberhub.ratelimit")


@dataclass(frozen=True)
class Rule:
    name: str
    limit: RateLimitItem
    message: str


class RateLimiter:
    """If the counters' store (Redis) fails, requests are let through with a
    warning: an outage of the limiter must not become an outage of the site."""

    WARN_EVERY_SECONDS = 30.0

    def __init__(self, rules: dict[str, str], *, redis_url: str | None = None, enabled: bool = True) -> None:
        self.storage: Storage = (
            RedisStorage(redis_url.replace("redis://", "async+redis://", 1), implementation="redispy")
            if redis_url else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._last_warning = 0.0
        self.enabled = enabled
        self.rules = {name: Rule(name, parse(spec), f"Too many requests ({spec})") for name, spec in rules.items()}

    async def hit(self, rule_name: str, key: str, *, quiet: bool = False) -> None:
        """Count one event; raise 429 (with Retry-After) if over the limit,
        unless `quiet` (the event is counted either way)."""
        try:
            await self._enforce(rule_name, key, self._limiter.hit)
        except RateLimited:
            if not quiet:
                raise

    async def check(self, rule_name: str, key: str) -> None:
        """Raise 429 if the limit is already reached, without counting."""
        await self._enforce(rule_name, key, self._limiter.test)

    async def allows(self, rule_name: str, key: str) -> bool:
        """True while the limit is not reached (nothing counted)."""
        if not self.enabled:
            return True
        rule = self.rules[rule_name]
        try:
            return bool(await self._limiter.test(rule.limit, rule_name, key))
        except Exception as exc:  # counters unavailable: fail open
            self._warn(exc)
            return True

    async def _enforce(self, rule_name: str, key: str, ask: Callable[..., Awaitable[bool]]) -> None:
        if not self.enabled:
            return
        rule = self.rules[rule_name]
        try:
            allowed = await ask(rule.limit, rule_name, key)
        except Exception as exc:  # counters unavailable: fail open
            self._warn(exc)
            return
        if not allowed:
            raise await self._refusal(rule, key)

    async def healthy(self) -> bool:
        try:
            return bool(await self.storage.check())
        except Exception:
            return False

    def _warn(self, exc: Exception) -> None:
        if time.monotonic() - self._last_warning >= self.WARN_EVERY_SECONDS:
            self._last_warning = time.monotonic()
            log.warning("Rate limits not enforced, their store failed: %s", type(exc).__name__)

    async def _refusal(self, rule: Rule, key: str) -> RateLimited:
        retry_after = max(1, math.ceil(await self.retry_after_seconds(rule.name, key)))
        return RateLimited(rule.message, headers={"Retry-After": str(retry_after)})

    async def retry_after_seconds(self, rule_name: str, key: str) -> float:
        """How long until the window has room again (0 when it has now)."""
        rule = self.rules[rule_name]
        stats = await self._limiter.get_window_stats(rule.limit, rule.name, key)
        return max(0.0, stats.reset_time - time.time())
