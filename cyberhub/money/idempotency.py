"""Idempotency-Key support for POST /api/cases/open.

A key is per user (`_id = "<userId>:<key>"`) and remembers the first
request's body hash, the operation id it started, and — once it succeeded —
its response; the TTL index keeps it at least 24 h. A retry with the same key
gets the stored response; one with a different body gets 409; one that arrives
while the first is still running waits for it, then gets 409. A request that
failed cleanly (an AppError: nothing changed) is forgotten; one that failed
in an unknown state (e.g. the database went away) stays "running" until
recovery settles it from its operation record.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cyberhub.platform.errors import AppError, BadRequest, Conflict, ServiceUnavailable
from cyberhub.platform.ids import new_id, now
from cyberhub.store.db import Database, DuplicateKeyError

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
POLL_SECONDS = 0.05

Response = tuple[int, dict]


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise BadRequest("Idempotency-Key must be 1–255 visible ASCII characters", code="invalid_idempotency_key")
    return key


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


async def run_once(
    db: Database,
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    action: Callable[[str], Awaitable[Response]],
    wait_seconds: float,
    start_within_seconds: float,
) -> tuple[Response, bool]:
    """Run `action(op_id)` at most once per key. Returns (response, replayed).

    `start_within_seconds` (OPERATION_DEADLINE_SECONDS) bounds how long after
    this call the action may still start. Recovery forgets a key left
    "running" without an operation once it is RECOVERY_GRACE_SECONDS old; a
    request whose key insert stalled that long must then not go on to move
    money, or a retry with the same key would run the operation a second time.
    The action's own deadline bounds the rest, and the two together stay
    below the grace."""
    clock = time.monotonic  # not loop.time(): uvloop's has millisecond resolution
    started = clock()
    doc_id = f"{user_id}:{key}"
    op_id = new_id()
    while True:
        try:
            await db.idempotency_keys.insert_one({"_id": doc_id, "userId": user_id, "fingerprint": fingerprint,
                                                  "opId": op_id, "state": "running", "createdAt": now()})
            break
        except DuplicateKeyError:
            stored = await _replay(db, doc_id, fingerprint, wait_seconds)
            if stored is not None:
                return stored, True
            # The first request failed and was forgotten meanwhile: this one runs.
    if clock() - started > start_within_seconds:
        await db.idempotency_keys.delete_one({"_id": doc_id, "opId": op_id, "state": "running"})
        raise ServiceUnavailable("The request took too long to start and was cancelled; nothing was changed",
                                 code="operation_timeout")
    try:
        status, body = await action(op_id)
    except AppError:
        await db.idempotency_keys.delete_one({"_id": doc_id})
        raise
    # Upsert: should recovery have forgotten a key this slow request still held,
    # the result is stored again, so later retries replay it.
    await db.idempotency_keys.update_one(
        {"_id": doc_id},
        {"$set": {"state": "done", "response": {"status": status, "body": body}},
         "$setOnInsert": {"userId": user_id, "fingerprint": fingerprint, "opId": op_id, "createdAt": now()}},
        upsert=True,
    )
    return (status, body), False


async def _replay(db: Database, doc_id: str, fingerprint: str, wait_seconds: float) -> Response | None:
    """The stored response of the first request; None if it failed and was forgotten."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        doc: Any = await db.idempotency_keys.find_one({"_id": doc_id})
        if doc is None:
            return None
        if doc["fingerprint"] != fingerprint:
            raise Conflict("Idempotency-Key was already used with a different request",
                           code="idempotency_key_reused")
        if doc["state"] == "done":
            return doc["response"]["status"], doc["response"]["body"]
        if asyncio.get_running_loop().time() >= deadline:
            raise Conflict("A request with this Idempotency-Key is still in progress",
                           code="idempotency_in_progress", headers={"Retry-After": "1"})
        await asyncio.sleep(POLL_SECONDS)
