"""User accounts: registration, login, the configured admin, and profiles."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from cyberhub.accounts.models import UserPublic
from cyberhub.accounts.security import Passwords, Tokens
from cyberhub.catalogue import fairness
from cyberhub.catalogue.models import FairPublic
from cyberhub.platform.errors import Conflict, Forbidden, Unauthorized
from cyberhub.platform.ids import as_utc, new_id, now
from cyberhub.store.db import Database, DuplicateKeyError

log = logging.getLogger("cyberhub.accounts")

# `lastActiveAt` is refreshed by authentication only when it is older than
# this, so an active player costs one extra write per window, not per request.
ACTIVE_REFRESH = timedelta(minutes=5)


def _new_user(username: str, password_hash: str, role: str, user_id: str | None = None) -> dict:
    stamp = now()
    return {
        "_id": user_id or new_id(),
        "username": username,
        "usernameLower": username.lower(),
        "passwordHash": password_hash,
        "role": role,
        "balance": 0,
        "appliedOps": [],
        "casesOpened": 0,
        "tokenVersion": 0,
        "fair": fairness.new_seed_pair(),
        "createdAt": stamp,
        "lastActiveAt": stamp,
    }


async def register(db: Database, passwords: Passwords, *, username: str, password: str) -> dict:
    user = _new_user(username, await passwords.hash(password), "user")
    try:
        await db.users.insert_one(user)
    except DuplicateKeyError:
        raise Conflict("Username is already taken", code="username_taken") from None
    return user


async def authenticate(db: Database, passwords: Passwords, *, username: str, password: str) -> dict:
    """The user whose password this is; 401 otherwise. Nothing else is decided
    here: the caller throttles first, then checks suspension (mark_logged_in)."""
    user = await db.users.find_one({"usernameLower": username.lower()})
    if not await passwords.verify(user["passwordHash"] if user else None, password):
        raise Unauthorized("Wrong username or password", code="invalid_credentials")
    return user


async def mark_logged_in(db: Database, user: dict) -> None:
    """A login the throttling let through: refused if suspended (only after the
    password, so the answer tells nothing to a guesser), else recorded."""
    check_not_suspended(user)
    user["lastActiveAt"] = now()
    await db.users.update_one({"_id": user["_id"]}, {"$set": {"lastActiveAt": user["lastActiveAt"]}})


def check_not_suspended(user: dict) -> None:
    if user.get("suspended"):
        raise Forbidden("This account is suspended", code="account_suspended")


async def touch_active(db: Database, user: dict) -> None:
    """Refresh `lastActiveAt` when it is older than ACTIVE_REFRESH (rarely a write)."""
    seen = as_utc(user.get("lastActiveAt"))
    stamp = now()
    if seen is None or stamp - seen >= ACTIVE_REFRESH:
        await db.users.update_one({"_id": user["_id"]}, {"$set": {"lastActiveAt": stamp}})
        user["lastActiveAt"] = stamp


def configured_admin_id(username: str) -> str:
    """The configured admin's id follows from its username, so every process
    that creates it — on one database, or each on its own embedded store —
    creates the same account, and its tokens are valid on all of them."""
    return hashlib.sha256(f"cyberhub-admin:{username.lower()}".encode()).hexdigest()[:32]


async def ensure_admin(db: Database, passwords: Passwords, *, username: str, password: str) -> None:
    """Make the configured admin exist: created, or promoted and its password
    reset. The settings are the root of trust: a suspension of this account
    (by another admin) is lifted, so a restart always gives the operator back
    an admin."""
    existing = await db.users.find_one({"usernameLower": username.lower()}, projection={"passwordHash": 1})
    if existing is not None and await passwords.verify(existing.get("passwordHash"), password):
        # Same password as before: keep the account's tokens valid across restarts.
        await db.users.update_one({"_id": existing["_id"]},
                                  {"$set": {"role": "admin", "lastActiveAt": now(), "suspended": None}})
        return
    # New password (or promotion): tokens issued before it stop working.
    password_hash = await passwords.hash(password)
    result = await db.users.update_one(
        {"usernameLower": username.lower()},
        {"$set": {"passwordHash": password_hash, "role": "admin", "lastActiveAt": now(), "suspended": None},
         "$inc": {"tokenVersion": 1}},
    )
    if result.matched_count:
        log.info("Admin account %r updated from settings", username)
        return
    try:
        await db.users.insert_one(_new_user(username, password_hash, "admin", configured_admin_id(username)))
        log.info("Admin account %r created from settings", username)
    except DuplicateKeyError:  # created concurrently by another process: update it instead
        await ensure_admin(db, passwords, username=username, password=password)


# What authentication never needs: the password hash, and the wallet's operation
# markers (up to 500 ids each, docs/MONEY.md) — read on every request, they were
# most of the bytes (on MongoDB) and of the copying (embedded store) of this read.
_NOT_FOR_REQUESTS = {"passwordHash": 0, "appliedOps": 0, "abortedOps": 0, "reversals": 0}


async def get_user(db: Database, user_id: str) -> dict | None:
    return await db.users.find_one({"_id": user_id}, projection=_NOT_FOR_REQUESTS)


async def user_for_token(db: Database, tokens: Tokens, token: str) -> dict:
    """The user a bearer token stands for, checked the same way for REST and
    Socket.IO: a valid signature and expiry, a user that still exists, and the
    user's current tokenVersion (a password change revokes older tokens), and
    an account that is not suspended (403 account_suspended: a suspension stops
    every token at once, and refuses new sockets)."""
    claims = tokens.decode(token)
    user = await get_user(db, claims.user_id)
    if user is None:
        raise Unauthorized("The token's user does not exist", code="invalid_token")
    if claims.version != user.get("tokenVersion", 0):
        raise Unauthorized("Token was revoked by a password change; log in again", code="token_revoked")
    check_not_suspended(user)
    return user


def public_fair(fair: dict) -> FairPublic:
    return FairPublic(server_seed_hash=fair["serverSeedHash"], client_seed=fair["clientSeed"], nonce=fair["nonce"])


async def public_profile(db: Database, user: dict) -> UserPublic:
    owned = await db.inventory.count_documents({"userId": user["_id"], "status": "owned"})
    return UserPublic(
        id=user["_id"],
        username=user["username"],
        role=user["role"],
        balance=user["balance"],
        cases_opened=user.get("casesOpened", 0),
        items_owned=owned,
        fair=public_fair(user["fair"]),
    )
