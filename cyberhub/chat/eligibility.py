"""CHAT_MIN_DEPOSITED: only players who have deposited at least this much (minor
units, the sum of their `payment` ledger entries — what the back office shows
as `deposited`) may write in chat; 0 turns the rule off.

Cheap per message: that sum never goes down (a reversal is its own ledger
reason), so once a player is eligible this process remembers it and never
asks again. A player not yet eligible has few ledger entries (little money
deposited), so summing theirs on the userId index costs little.
"""

from __future__ import annotations

from cyberhub.platform.errors import Forbidden
from cyberhub.store.db import Database

MAX_REMEMBERED = 100_000  # eligible players remembered; past it the memory starts again


class NotEligible(Forbidden):
    code = "chat_not_eligible"


class Eligibility:
    def __init__(self, db: Database, min_deposited: int) -> None:
        self.db = db
        self.min_deposited = min_deposited
        self._eligible: set[str] = set()

    async def check(self, user_id: str) -> None:
        if self.min_deposited <= 0 or user_id in self._eligible:
            return
        deposited = await self.deposited(user_id)
        if deposited < self.min_deposited:
            raise NotEligible(f"Chat is open to players who have deposited at least {self.min_deposited} "
                              "(minor units)")
        if len(self._eligible) >= MAX_REMEMBERED:
            self._eligible.clear()
        self._eligible.add(user_id)

    async def deposited(self, user_id: str) -> int:
        rows = await self.db.ledger.aggregate([
            {"$match": {"userId": user_id, "reason": "payment"}},
            {"$group": {"_id": None, "total": {"$sum": "$delta"}}},
        ]).to_list(None)
        return int(rows[0]["total"]) if rows else 0
