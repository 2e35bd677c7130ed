"""Abuse limits (the `limits` library): per user and per IP on auth, open,
claim and fair endpoints, failed logins per username, and socket events per
socket. With REDIS_URL set the counters live in Redis, so every process
behind the load balancer shares them; otherwise in this process's memory.

Every refusal by every limit is counted here, by rule name, in one place
(`refusals`, read by /metrics as `cyberhub_rate_limited_total{rule}`), so no
caller can forget to count one."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
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
    """If the shared counters' store (Redis) fails, the check is answered by
    this process's own in-memory counters instead, with a warning every 30 s:
    an outage of the limiter's store must not become an outage of the site,
    and logins stay throttled (per process) while Redis is away. Each such
    check is counted in `fallback_checks`."""

    WARN_EVERY_SECONDS = 30.0

    def __init__(self, rules: dict[str, str], *, redis_url: str | None = None, enabled: bool = True) -> None:
        self.storage: Storage = (
            RedisStorage(redis_url.replace("redis://", "async+redis://", 1), implementation="redispy")
            if redis_url else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self.storage)
        # Per-process counters used only while the shared store fails.
        self._fallback_storage = MemoryStorage()
        self._fallback = MovingWindowRateLimiter(self._fallback_storage) if redis_url else None
        self._last_warning = 0.0
        self.enabled = enabled
        self.rules = {name: Rule(name, parse(spec), f"Too many requests ({spec})") for name, spec in rules.items()}
        self.refusals: Counter[str] = Counter()  # rule name -> refusals (429s, socket event refusals)
        self.fallback_checks = 0  # checks the shared store could not answer

    async def hit(self, rule_name: str, key: str, *, quiet: bool = False) -> None:
        """Count one event; raise 429 (with Retry-After) if over the limit,
        unless `quiet` (the event is counted either way, and a quiet one is
        not a refusal)."""
        await self._enforce(rule_name, key, "hit", refuse=not quiet)

    async def check(self, rule_name: str, key: str) -> None:
        """Raise 429 if the limit is already reached, without counting."""
        await self._enforce(rule_name, key, "test", refuse=True)

    async def allows(self, rule_name: str, key: str) -> bool:
        """True while the limit is not reached (nothing counted, never a refusal)."""
        if not self.enabled:
            return True
        rule = self.rules[rule_name]
        allowed, _ = await self._ask("test", rule, key)
        return allowed

    async def give_back(self, rule_name: str, key: str) -> None:
        """Uncount one event `hit` counted: for an event a later check refused
        (a refused event must use up no limit). Counting first and giving back
        is what keeps concurrent events from all passing a check-then-count."""
        if not self.enabled:
            return
        rule = self.rules[rule_name]
        window = rule.limit.key_for(rule.name, key)
        try:
            await _drop_newest(self.storage, window)
        except Exception as exc:  # counters unavailable: the hit went to the fallback
            self._warn(exc)
            if self._fallback is not None:
                await _drop_newest(self._fallback_storage, window)

    async def _enforce(self, rule_name: str, key: str, method: str, *, refuse: bool) -> None:
        if not self.enabled:
            return
        rule = self.rules[rule_name]
        allowed, limiter = await self._ask(method, rule, key)
        if not allowed and refuse:
            self.refusals[rule.name] += 1
            raise await self._refusal(limiter, rule, key)

    async def _ask(self, method: str, rule: Rule, key: str) -> tuple[bool, MovingWindowRateLimiter]:
        """(allowed, the limiter that answered): the shared one, or this
        process's fallback while the shared store fails (fail open without one)."""
        ask: Callable[..., Awaitable[bool]] = getattr(self._limiter, method)
        try:
            return bool(await ask(rule.limit, rule.name, key)), self._limiter
        except Exception as exc:  # counters unavailable
            self.fallback_checks += 1
            self._warn(exc)
        if self._fallback is None:
            return True, self._limiter
        return bool(await getattr(self._fallback, method)(rule.limit, rule.name, key)), self._fallback

    async def healthy(self) -> bool:
        try:
            return bool(await self.storage.check())
        except Exception:
            return False

    def _warn(self, exc: Exception) -> None:
        if time.monotonic() - self._last_warning >= self.WARN_EVERY_SECONDS:
            self._last_warning = time.monotonic()
            how = "this process's own counters are used" if self._fallback else "not enforced"
            log.warning("Rate limits' store failed (%s): %s until it answers", type(exc).__name__, how)

    async def _refusal(self, limiter: MovingWindowRateLimiter, rule: Rule, key: str) -> RateLimited:
        retry_after = max(1, math.ceil(await self._retry_after(limiter, rule, key)))
        return RateLimited(rule.message, headers={"Retry-After": str(retry_after)})

    async def retry_after_seconds(self, rule_name: str, key: str) -> float:
        """How long until the window has room again (0 when it has now)."""
        return await self._retry_after(self._limiter, self.rules[rule_name], key)

    @staticmethod
    async def _retry_after(limiter: MovingWindowRateLimiter, rule: Rule, key: str) -> float:
        try:
            stats = await limiter.get_window_stats(rule.limit, rule.name, key)
            return max(0.0, stats.reset_time - time.time())
        except Exception:  # the store went away between the check and this: the window's length
            return float(rule.limit.get_expiry())


async def _drop_newest(storage: Storage, window: str) -> None:
    """Removes the newest entry of a moving window. `limits` has no call for
    it, so this relies on its two stores' layouts, checked against limits
    5.8.0 (requirements.txt): `MemoryStorage.events[key]` is a list of entry
    times, newest first; `RedisStorage` keeps the window as a Redis list,
    newest first, at `bridge.prefixed_key(key)`, reached through
    `bridge.get_connection()`. tests/test_chat.py gives a hit back on both
    stores (a real redis-server) and fails if either layout changes."""
    if isinstance(storage, MemoryStorage):
        entries = storage.events.get(window)
        if entries:
            entries.pop(0)
    elif isinstance(storage, RedisStorage):
        bridge = storage.bridge
        await bridge.get_connection().lpop(bridge.prefixed_key(window))
