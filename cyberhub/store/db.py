"""The only module that imports the MongoDB driver (Motor); with no URI it
hands out the embedded store (store/embedded.py, its index layer).

Everything else talks to the database object this module returns and catches
the error classes re-exported here, so the later move to PyMongo's
AsyncMongoClient touches this file only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

__all__ = [
    "ConnectionFailure",
    "DuplicateKeyError",
    "PyMongoError",
    "ReturnDocument",
    "ServerSelectionTimeoutError",
    "Store",
    "change_version",
    "connect",
    "ensure_indexes",
    "insert_once",
    "is_unavailable_error",
]

log = logging.getLogger("cyberhub.db")

Database = Any  # AsyncIOMotorDatabase or its embedded stand-in


@dataclass
class Store:
    client: Any
    db: Database
    embedded: bool

    def close(self) -> None:
        self.client.close()


def connect(uri: str | None, db_name: str, timeout_ms: int = 5000) -> Store:
    """Motor client for `uri`; with no URI, the embedded in-process store."""
    if not uri:
        log.warning(
            "⚠️  MONGODB_URI is not set: using the EMBEDDED in-process store. "
            "Data lives only while this process runs — do not use this in production."
        )
        from cyberhub.store import embedded

        client = embedded.embedded_client()
        return Store(client=client, db=embedded.embedded_database(client, db_name), embedded=True)

    from motor.motor_asyncio import AsyncIOMotorClient

    client = AsyncIOMotorClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        # A reply that never comes must not hold a money operation past its deadline.
        socketTimeoutMS=max(2 * timeout_ms, 10_000),
        uuidRepresentation="standard",
    )
    return Store(client=client, db=client[db_name], embedded=False)


def is_unavailable_error(exc: BaseException) -> bool:
    """True for driver errors that mean 'the database cannot be reached'."""
    return isinstance(exc, ConnectionFailure | ServerSelectionTimeoutError)


def change_version(collection: Any) -> Callable[[], int] | None:
    """On the embedded store, a function giving `collection`'s change version:
    the same value twice means no document of it changed in between, whoever
    wrote (every server that can share an embedded store is in this process,
    and all of them write through the same in-memory collections). None on
    MongoDB, where only a read can tell what another process wrote."""
    return getattr(collection, "_cyberhub_change_version", None)


async def insert_once(collection: Any, doc: dict) -> bool:
    """Insert `doc` unless its `_id` exists already; True if this call inserted it."""
    try:
        await collection.insert_one(doc)
        return True
    except DuplicateKeyError:
        return False


async def ping(db: Database) -> None:
    await db.command("ping")


async def ensure_indexes(db: Database, *, idempotency_ttl_seconds: int) -> None:
    """Create every index the rules depend on (idempotent; run at start-up)."""
    await db.users.create_indexes([IndexModel([("usernameLower", ASCENDING)], unique=True)])
    await db.cases.create_indexes([IndexModel([("active", ASCENDING), ("createdAt", ASCENDING)])])
    await db.case_versions.create_indexes([IndexModel([("caseId", ASCENDING), ("version", ASCENDING)], unique=True)])
    await db.ledger.create_indexes([IndexModel([("userId", ASCENDING), ("createdAt", ASCENDING)])])
    await db.operations.create_indexes([IndexModel([("state", ASCENDING), ("createdAt", ASCENDING)])])
    await db.inventory.create_indexes([
        IndexModel([("userId", ASCENDING), ("wonAt", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("status", ASCENDING)]),  # public "items sold" count
    ])
    await db.openings.create_indexes([IndexModel([("createdAt", DESCENDING)])])
    await db.payment_deliveries.create_indexes([IndexModel([("paymentId", ASCENDING), ("receivedAt", ASCENDING)])])
    await db.fair_seeds.create_indexes([IndexModel([("userId", ASCENDING), ("revealedAt", DESCENDING)])])
    # The admin back office: player sorts, ledger and openings aggregations by time
    # and case, deliveries by time and player, the audit trail.
    await db.users.create_indexes([IndexModel([(f, DESCENDING), ("_id", DESCENDING)])
                                   for f in ("balance", "createdAt", "lastActiveAt")])
    await db.ledger.create_indexes([IndexModel([("createdAt", ASCENDING)]),
                                    IndexModel([("reason", ASCENDING), ("createdAt", ASCENDING)])])
    await db.openings.create_indexes([IndexModel([("caseId", ASCENDING), ("caseVersion", ASCENDING)])])
    await db.payment_deliveries.create_indexes([IndexModel([("receivedAt", DESCENDING)]),
                                                IndexModel([("userId", ASCENDING), ("receivedAt", DESCENDING)])])
    await db.admin_audit.create_indexes([IndexModel([("createdAt", DESCENDING), ("_id", DESCENDING)])])
    # Upgrades: back-office statistics by time.
    await db.upgrades.create_indexes([IndexModel([("createdAt", DESCENDING)])])
    # Case battles: the lobby and back office by status and time, a player's battles,
    # the recovery pass's waiting/running scans; battle draws for the RTP alarm.
    await db.battles.create_indexes([IndexModel([("status", ASCENDING), ("createdAt", DESCENDING),
                                                 ("_id", DESCENDING)]),
                                     IndexModel([("createdAt", DESCENDING), ("_id", DESCENDING)]),
                                     IndexModel([("slots.userId", ASCENDING), ("createdAt", DESCENDING)]),
                                     IndexModel([("createdBy", ASCENDING), ("status", ASCENDING)]),
                                     # the back office's battle statistics by finish / cancel time
                                     IndexModel([("status", ASCENDING), ("finishedAt", ASCENDING)]),
                                     IndexModel([("status", ASCENDING), ("cancelledAt", ASCENDING)]),
                                     # BATTLE_MAX_OPEN_PER_USER: one open battle per creator slot (seats.py)
                                     IndexModel([("openSlot", ASCENDING)], unique=True, sparse=True),
                                     # the recovery pass: finished battles whose end was never announced
                                     IndexModel([("finishAnnounced", ASCENDING), ("finishedAt", ASCENDING)])])
    await db.battle_draws.create_indexes([IndexModel([("createdAt", ASCENDING)])])
    # Idempotency keys are per user (the _id is "<userId>:<key>") and expire after the TTL.
    ttl_index = IndexModel([("createdAt", ASCENDING)], expireAfterSeconds=idempotency_ttl_seconds)
    try:
        await db.idempotency_keys.create_indexes([ttl_index])
    except OperationFailure:
        # IDEMPOTENCY_TTL_HOURS changed since the index was made: replace the index.
        log.warning("Idempotency key TTL changed to %d s: rebuilding its index", idempotency_ttl_seconds)
        await db.idempotency_keys.drop_index("createdAt_1")
        await db.idempotency_keys.create_indexes([ttl_index])
