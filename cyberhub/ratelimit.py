"""Abuse limits (the `limits` library): per user and per IP on auth, open,
claim and fair endpoints, failed logins per username, and socket events per
socket. With REDIS_URL set the counters live in Redis, so every process
behind the load balancer shares them; otherwise in this process's memory."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from cyberhub.errors import RateLimited


@dataclass(frozen=True)
class Rule:
    name: str
    limit: RateLimitItem
    message: str


class RateLimiter:
    def __init__(self, rules: dict[str, str], *, redis_url: str | None = None, enabled: bool = True) -> None:
        storage: Storage = (
            RedisStorage(redis_url.replace("redis://", "async+redis://", 1), implementation="redispy")
            if redis_url else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self.enabled = enabled
        self.rules = {name: Rule(name, parse(spec), f"Too many requests ({spec})") for name, spec in rules.items()}

    async def hit(self, rule_name: str, key: str) -> None:
        """Count one event; raise 429 (with Retry-After) if over the limit."""
        if not self.enabled:
            return
        rule = self.rules[rule_name]
        if not await self._limiter.hit(rule.limit, rule_name, key):
            raise await self._refusal(rule, key)

    async def check(self, rule_name: str, key: str) -> None:
        """Raise 429 if the limit is already reached, without counting."""
        if not self.enabled:
            return
        rule = self.rules[rule_name]
        if not await self._limiter.test(rule.limit, rule_name, key):
            raise await self._refusal(rule, key)

    async def _refusal(self, rule: Rule, key: str) -> RateLimited:
        stats = await self._limiter.get_window_stats(rule.limit, rule.name, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        return RateLimited(rule.message, headers={"Retry-After": str(retry_after)})
