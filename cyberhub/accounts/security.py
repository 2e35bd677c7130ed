"""Password hashing (argon2id) and bearer tokens (HS256 JWT)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cyberhub.platform.errors import Unauthorized

ROLES = ("user", "admin")


class Passwords:
    """argon2id hashing, run off the IOLoop because each hash costs tens of ms."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, threads: int = 2) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # Its own small pool: at most `threads` hashes (each ARGON2_MEMORY_KIB) at once,
        # whatever the number of concurrent logins; the others queue.
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        # Verified against when the username does not exist, so that timing
        # does not tell which usernames are registered.
        self._dummy_hash = self._hasher.hash("cyberhub-dummy-password")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored_hash or self._dummy_hash, password) and stored_hash is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.get_running_loop().run_in_executor(self._pool, check)


@dataclass(frozen=True)
class Claims:
    user_id: str
    role: str
    expires_at: int
    version: int  # the user's tokenVersion when issued; a password reset bumps it


# Tokens whose signature was verified, kept so that a player's next request
# skips PyJWT (its base64 and HMAC checks were the largest piece of an
# authenticated request outside the store); the oldest go first past this.
VERIFIED_TOKENS_KEPT = 4096


class Tokens:
    algorithm = "HS256"

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        # token → its claims; only tokens signed with this secret get in, and
        # expiry is checked again on every use (revocation and suspension are
        # checked against the user document by the caller, as before).
        self._verified: dict[str, Claims] = {}

    def issue(self, user_id: str, role: str, version: int = 0) -> str:
        now = int(time.time())
        payload = {"sub": user_id, "role": role, "ver": version, "iat": now, "exp": now + self._ttl}
        return jwt.encode(payload, self._secret, algorithm=self.algorithm)

    def decode(self, token: str) -> Claims:
        claims = self._verified.get(token)
        if claims is not None:
            if time.time() < claims.expires_at:  # PyJWT's rule: expired once exp <= now
                return claims
            del self._verified[token]
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=[self.algorithm], options={"require": ["sub", "role", "exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token has expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("Invalid token", code="invalid_token") from None
        if not isinstance(payload["sub"], str) or payload["role"] not in ROLES:
            raise Unauthorized("Invalid token", code="invalid_token")
        version = payload.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise Unauthorized("Invalid token", code="invalid_token")
        return Claims(user_id=payload["sub"], role=payload["role"], expires_at=int(payload["exp"]), version=version)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None if absent."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'", code="invalid_token")
    return token.strip()
