"""The money invariants every economy test ends with (docs/MONEY.md)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


async def assert_money_invariants(db: Any) -> dict[str, int]:
    """For every user: balance == Σ ledger deltas, balance ≥ 0, every applied marker has its entry;
    no pending operation; every debit has its item and opening; every sale and
    payment is credited exactly once; a reversal only of a credited payment, once;
    every adjustment names its admin and reason. Returns balances by user id."""
    ledger = await db.ledger.find({}).to_list(None)
    sums: dict[str, int] = defaultdict(int)
    for entry in ledger:
        assert isinstance(entry["delta"], int)
        sums[entry["userId"]] += entry["delta"]
    balances = {}
    for user in await db.users.find({}).to_list(None):
        assert isinstance(user["balance"], int) and user["balance"] >= 0, user
        assert user["balance"] == sums.get(user["_id"], 0), (user["username"], user["balance"], sums[user["_id"]])
        for op_id in user.get("appliedOps", []):
            assert await db.ledger.find_one({"_id": op_id}) is not None, f"applied {op_id} has no ledger entry"
        balances[user["_id"]] = user["balance"]
    assert await db.operations.count_documents({"state": "pending"}) == 0

    by_reason = Counter(entry["reason"] for entry in ledger)
    debits = [e for e in ledger if e["reason"] == "case_open"]
    for entry in debits:
        assert entry["delta"] < 0
        assert await db.inventory.find_one({"_id": entry["_id"]}) is not None, "debit without its item"
        assert await db.openings.find_one({"_id": entry["_id"]}) is not None, "debit without its opening"
    # Items from upgrades and battles carry a `source` and are checked by their own invariants and tests.
    assert await db.inventory.count_documents({"source": {"$exists": False}}) == by_reason["case_open"], \
        "item without its debit"
    assert await db.openings.count_documents({}) == by_reason["case_open"]
    sold = await db.inventory.find({"status": "sold"}).to_list(None)
    sales = [e for e in ledger if e["reason"] == "item_sale"]
    assert sorted(e["refId"] for e in sales) == sorted(i["_id"] for i in sold), "sale credited twice or lost"
    payments = Counter(e["refId"] for e in ledger if e["reason"] == "payment")
    assert all(count == 1 for count in payments.values()), payments
    reversals = [e for e in ledger if e["reason"] == "payment_reversal"]
    assert all(e["delta"] <= 0 and e["_id"] == f"reverse:{e['refId']}" for e in reversals), reversals
    assert all(payments[e["refId"]] == 1 for e in reversals), "a reversal of a payment never credited"
    assert all(e.get("adminId") and e.get("text") for e in ledger if e["reason"] == "admin_adjustment")
    await assert_upgrade_invariants(db, [e for e in ledger if e["reason"] == "upgrade"])
    return balances


async def assert_upgrade_invariants(db: Any, entries: list[dict]) -> None:
    """Every upgrade has its ledger entry (delta 0) and record; every staked item
    belongs to exactly one recorded upgrade of its owner, and every item of a
    recorded upgrade is staked by it; an item is won exactly by each won upgrade."""
    records = {r["_id"]: r for r in await db.upgrades.find({}).to_list(None)}
    assert sorted(e["_id"] for e in entries) == sorted(records), "upgrade without its ledger entry or record"
    assert all(e["delta"] == 0 for e in entries)
    staked = await db.inventory.find({"status": "upgraded"}).to_list(None)
    for item in staked:
        record = records.get(item.get("upgradeId"))
        assert record is not None and item["_id"] in record["itemIds"], f"item {item['_id']} staked by no upgrade"
        assert record["userId"] == item["userId"]
    assert sorted(i["_id"] for i in staked) == sorted(i for r in records.values() for i in r["itemIds"]), \
        "an upgrade's item not staked, or staked twice"
    won = await db.inventory.find({"source": "upgrade"}).to_list(None)
    assert sorted(i["_id"] for i in won) == sorted(k for k, r in records.items() if r["won"])
    assert all(i["upgradeId"] == i["_id"] and i["price"] == records[i["_id"]]["targetValue"] for i in won)
