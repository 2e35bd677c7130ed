"""Each user's provably-fair seed pair: read, rotate, change the client seed.

Rotation is a compare-and-set on the current seed hash and nonce, so it can
never reveal a seed while reporting a nonce an opening has since advanced.
The revealed pair is kept on the user (`fairHistory`, last 100) in the same
atomic update, so a crash cannot lose a revealed seed.
"""

from __future__ import annotations

from cyberhub.catalogue import fairness
from cyberhub.catalogue.models import FairHistoryEntry, FairPublic, FairRevealed
from cyberhub.platform.errors import NotFound
from cyberhub.platform.ids import as_utc, now
from cyberhub.store.db import Database, ReturnDocument

HISTORY_LIMIT = 100


async def current(db: Database, user_id: str) -> dict:
    user = await db.users.find_one({"_id": user_id}, projection={"fair": 1})
    if user is None:
        raise NotFound("User not found", code="user_not_found")
    return user["fair"]


async def rotate(db: Database, *, user_id: str, client_seed: str | None = None) -> tuple[FairRevealed, FairPublic]:
    """Reveal the current server seed and commit a new one (nonce back to 0)."""
    while True:
        old = await current(db, user_id)
        new = fairness.new_seed_pair(client_seed if client_seed is not None else old["clientSeed"])
        revealed = {**old, "revealedAt": now()}
        updated = await db.users.find_one_and_update(
            {"_id": user_id, "fair.serverSeedHash": old["serverSeedHash"], "fair.nonce": old["nonce"]},
            {"$set": {"fair": new}, "$push": {"fairHistory": {"$each": [revealed], "$slice": -HISTORY_LIMIT}}},
            projection={"fair": 1},
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None:
            previous = FairRevealed(server_seed=old["serverSeed"], server_seed_hash=old["serverSeedHash"],
                                    client_seed=old["clientSeed"], nonce=old["nonce"])
            return previous, public(updated["fair"])


async def history(db: Database, user_id: str) -> list[FairHistoryEntry]:
    """Revealed seed pairs, newest first (the last HISTORY_LIMIT), so openings
    stay verifiable even if a rotate answer was lost."""
    user = await db.users.find_one({"_id": user_id}, projection={"fairHistory": 1})
    if user is None:
        raise NotFound("User not found", code="user_not_found")
    return [
        FairHistoryEntry(server_seed=h["serverSeed"], server_seed_hash=h["serverSeedHash"],
                         client_seed=h["clientSeed"], nonce=h["nonce"], revealed_at=as_utc(h["revealedAt"]))
        for h in reversed(user.get("fairHistory", []))
    ]


def public(fair: dict) -> FairPublic:
    return FairPublic(server_seed_hash=fair["serverSeedHash"], client_seed=fair["clientSeed"], nonce=fair["nonce"])
