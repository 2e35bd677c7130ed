"""Every setting the service reads, from the environment and `.env`.

The names are a contract (README.md, "Configuration"; docs/OPERATIONS.md): deployments and tests rely on
them. In development a missing secret is replaced by a random one (with a
loud warning at start-up); in production the service refuses to start.
"""

from __future__ import annotations

import secrets
from typing import Literal

import limits
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cyberhub.accounts.models import Credentials

MIB = 1024 * 1024


class Settings(BaseSettings):
    # hide_input_in_errors: a start-up error must not print (parts of) secrets.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False,
                                      hide_input_in_errors=True)

    environment: Literal["development", "production"] = "development"
    host: str = "0.0.0.0"
    port: int = Field(3000, ge=0, le=65535)

    # Database: unset URI = embedded in-process store (data lives only while the process runs).
    mongodb_uri: str | None = None
    mongodb_db: str = "cyberhub"
    mongodb_timeout_ms: int = Field(5000, ge=100)

    jwt_secret: SecretStr | None = None
    jwt_ttl_seconds: int = Field(24 * 3600, ge=60)
    payment_webhook_secret: SecretStr | None = None
    payment_tolerance_seconds: int = Field(300, ge=1)
    payment_max_amount: int = Field(1_000_000, gt=0, le=100_000_000_000)  # minor units: 10,000.00
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")

    admin_username: str | None = None
    admin_password: SecretStr | None = None

    cors_origins: str = "*"
    redis_url: str | None = None

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    # Password hashing cost (argon2id). Defaults follow RFC 9106's low-memory profile.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(64 * 1024, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    argon2_threads: int = Field(2, ge=1)  # hashes computed at once (memory: threads × ARGON2_MEMORY_KIB)

    idempotency_ttl_hours: int = Field(24, ge=24)
    idempotency_wait_seconds: float = Field(5.0, ge=0)
    # Operations younger than this are assumed to still be running somewhere.
    recovery_grace_seconds: float = Field(60.0, ge=0)
    # A live money operation gives up (nothing charged) if it cannot move the money
    # within this time; must stay below half of RECOVERY_GRACE_SECONDS.
    operation_deadline_seconds: float = Field(20.0, gt=0)
    recovery_interval_seconds: float = Field(30.0, gt=0)

    # Connections the kernel holds for the process to accept. A restart makes every
    # client reconnect at once; past the backlog the kernel drops their SYNs and
    # each retries after 1, 3, 7, 15 … s (bench/README.md, "Reconnect storm").
    # Linux caps it at net.core.somaxconn (4096 since Linux 5.4).
    listen_backlog: int = Field(4096, ge=1, le=65535)
    # The asyncio event loop: uvloop (libuv, C) when installed, which keeps the
    # loop responsive under connect waves (bench/README.md, issue 18, third session); "asyncio"
    # forces the standard library's loop, "uvloop" refuses to start without it.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    socket_ping_interval: float = Field(25.0, gt=0)
    socket_ping_timeout: float = Field(20.0, gt=0)
    socket_max_buffer_bytes: int = Field(64 * 1024, ge=1024)
    # What the server holds unsent for one client (websocket stream or polling
    # queue); past it the client is disconnected. 512 KiB ≈ 230 drop:new events
    # (~2.2 KB): over 20 s of the live feed at its default cap for a client on a
    # stalled link, while 10,000 stalled clients stay within ~5 GiB.
    socket_max_pending_bytes: int = Field(512 * 1024, ge=64 * 1024)
    socket_max_per_address: int = Field(100, ge=0)  # engine.io sessions per client address; 0 = no limit
    socket_max_connections: int = Field(10000, ge=0)  # engine.io sessions in this process; 0 = no limit
    live_feed_max_per_second: int = Field(10, ge=0)  # drop:new broadcasts per second; 0 = no cap
    shutdown_timeout_seconds: float = Field(30.0, ge=0)
    # Chat (cyberhub/chat). CHAT_MAX_PER_SECOND: site-wide chat:send cap, above it
    # chat_slow_mode (0 = no cap); the default is measured (bench/README.md "Chat").
    chat_max_length: int = Field(300, ge=1, le=10_000)
    chat_max_per_second: int = Field(5, ge=0)
    chat_min_deposited: int = Field(0, ge=0)  # minor units deposited before one may chat; 0 = anyone
    chat_history_size: int = Field(1000, ge=1, le=1_000_000)
    # Behind a reverse proxy / load balancer: take the client IP from X-Forwarded-For / X-Real-Ip.
    trust_proxy_headers: bool = False
    # If set, GET /metrics requires "Authorization: Bearer <METRICS_TOKEN>".
    metrics_token: SecretStr | None = None

    # Case battles (README.md, "Case battles").
    battle_max_cases: int = Field(25, ge=1, le=100)  # cases (rounds) per battle
    battle_max_open_per_user: int = Field(3, ge=1)  # waiting battles one player may have created
    battle_waiting_minutes: float = Field(30.0, gt=0)  # then the recovery loop cancels and refunds
    battle_round_seconds: float = Field(3.0, ge=0)  # between reveals; 0 = as fast as the loop runs

    # Abuse limits, "<count>/<second|minute|hour>" (the `limits` library's notation).
    rate_limit_enabled: bool = True
    rate_limit_auth_per_ip: str = "30/minute"  # register + login attempts from one IP
    rate_limit_login_failures: str = "5/minute"  # failed logins for one username from one IP
    rate_limit_login_failures_per_account: str = "100/hour"  # failed logins for one username, any IP
    rate_limit_open_per_user: str = "120/minute"
    rate_limit_open_per_ip: str = "600/minute"
    rate_limit_claim_per_user: str = "120/minute"
    rate_limit_fair_per_user: str = "30/minute"  # rotate / client-seed
    rate_limit_verify_per_ip: str = "120/minute"
    rate_limit_socket_events: str = "30/minute"  # user:identify and battle:watch per socket
    rate_limit_webhook_forged_per_ip: str = "60/minute"  # badly signed webhook deliveries
    rate_limit_upgrade_per_user: str = "120/minute"  # POST /api/upgrades

    # Upgrades (cyberhub/games/upgrades/operation.py): chance = min(stake × (1 − edge) / target, max).
    upgrade_house_edge: float = Field(0.10, ge=0, lt=1)
    upgrade_max_chance: float = Field(0.80, gt=0, le=1)
    upgrade_min_chance: float = Field(0.01, ge=0, le=1)  # a lower chance is refused (400)
    rate_limit_chat_per_user: str = "10/minute"  # accepted chat messages per player

    # Names of secrets that were missing and generated for this run (development only).
    generated_secrets: list[str] = Field(default_factory=list, exclude=True)

    @model_validator(mode="after")
    def _empty_means_unset(self) -> Settings:
        """`NAME=` in a .env file means "not set", not "set to the empty string"."""
        for name in ("mongodb_uri", "redis_url", "admin_username"):
            if getattr(self, name) == "":
                setattr(self, name, None)
        if not self.cors_origin_list:
            self.cors_origins = "*"
        for name in ("jwt_secret", "payment_webhook_secret", "admin_password", "metrics_token"):
            value = getattr(self, name)
            if value is not None and not value.get_secret_value():
                setattr(self, name, None)
        return self

    @model_validator(mode="after")
    def _guard_secrets(self) -> Settings:
        # Every problem at once, in one message: an operator fixing a blank
        # set-up should not need one round per setting.
        problems = [*self._production_problems(), *self._admin_problems()]
        # An Idempotency-Key request may take one deadline to start its operation
        # and one more to move the money: both must end before recovery judges it.
        if 0 < self.recovery_grace_seconds <= 2 * self.operation_deadline_seconds:
            problems.append("OPERATION_DEADLINE_SECONDS must be below half of RECOVERY_GRACE_SECONDS")
        if self.upgrade_min_chance > self.upgrade_max_chance:
            problems.append("UPGRADE_MIN_CHANCE must not exceed UPGRADE_MAX_CHANCE")
        if problems:
            raise ValueError("; ".join(problems))
        for name in ("jwt_secret", "payment_webhook_secret"):
            if not self._secret(name):
                setattr(self, name, SecretStr(secrets.token_urlsafe(32)))
                self.generated_secrets.append(name.upper())
        return self

    def _production_problems(self) -> list[str]:
        if self.environment != "production":
            return []
        problems = []
        missing = [n.upper() for n in ("jwt_secret", "payment_webhook_secret") if not self._secret(n)]
        if missing:
            problems.append(f"production requires {', '.join(missing)}")
        weak = [n.upper() for n in ("jwt_secret", "payment_webhook_secret") if 0 < len(self._secret(n)) < 32]
        if weak:
            problems.append(f"{', '.join(weak)} must be at least 32 characters in production")
        if not self.mongodb_uri:
            problems.append("production requires MONGODB_URI (the embedded store loses everything on restart)")
        if self.metrics_token is None:
            problems.append("production requires METRICS_TOKEN (/metrics shows revenue)")
        if "*" in self.cors_origin_list:
            problems.append("CORS_ORIGINS='*' is only allowed in development")
        return problems

    def _admin_problems(self) -> list[str]:
        """The configured admin must be able to log in: the same rules as
        registration (cyberhub/accounts/models.py), in every environment."""
        if bool(self.admin_username) != bool(self.admin_password):
            return ["ADMIN_USERNAME and ADMIN_PASSWORD must be set together"]
        if not self.admin_username or self.admin_password is None:
            return []
        try:
            Credentials.model_validate({"username": self.admin_username,
                                        "password": self.admin_password.get_secret_value()})
        except ValidationError as exc:
            rules = {"username": "ADMIN_USERNAME must be 3 to 32 of A-Z, a-z, 0-9 and _ (as registration requires)",
                     "password": "ADMIN_PASSWORD must be 8 to 128 characters (as registration requires)"}
            return [rules[str(err["loc"][0])] for err in exc.errors()]
        return []

    def _secret(self, name: str) -> str:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else ""

    def rate_limit_rules(self) -> dict[str, str]:
        rules = {name.removeprefix("rate_limit_"): getattr(self, name)
                 for name in type(self).model_fields if name.startswith("rate_limit_") and name != "rate_limit_enabled"}
        # While an account is under attack (past its failure limit), one login
        # attempt per address per that limit's period (handlers/auth.py).
        per_account = limits.parse(rules["login_failures_per_account"])
        rules["login_attempt_under_attack"] = f"1 per {per_account.multiples} {per_account.GRANULARITY.name}"
        return rules

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def jwt_key(self) -> str:
        return self._secret("jwt_secret")

    @property
    def webhook_key(self) -> str:
        return self._secret("payment_webhook_secret")
