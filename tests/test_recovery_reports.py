"""What a recovery pass reports (and so logs and counts in
cyberhub_recovery_actions_total) matches what it did."""

from __future__ import annotations

from cyberhub.server import recovery
from tests.test_economy import create_case, funded_user

CASE = {"name": "Reported", "price": 100,
        "items": [{"name": "Pebble", "rarity": "common", "price": 30, "weight": 1}]}


async def test_a_sale_discarded_by_recovery_is_reported_discarded(live):
    """A sale left pending (its operation record written, then the store went
    away); its item is staked in an upgrade before recovery runs: recovery pays
    nothing and discards the sale, and says so (it used to report it completed)."""
    case = await create_case(live, CASE)
    token, user_id = await funded_user(live, "staker", 100)
    item = (await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body["item"]
    live.chaos.arm(2)  # after the sale's record: the item is never marked sold
    assert (await live.api.post("/api/inventory/claim", {"itemId": item["id"]}, token=token)).status == 503
    live.chaos.disarm()
    sale = await live.db.operations.find_one({"state": "pending", "itemId": item["id"]})
    assert sale is not None
    # An upgrade's stake write, as cyberhub/games/upgrades/operation.py makes it.
    await live.db.inventory.update_one({"_id": item["id"], "status": "owned"},
                                       {"$set": {"status": "upgraded", "upgradeId": "an-upgrade"}})

    report = await recovery.recover(live.db, grace_seconds=0)
    assert report.discarded == [sale["_id"]] and report.completed == [] and not report.users, report
    assert (await live.db.users.find_one({"_id": user_id}))["balance"] == 0
    assert await live.db.ledger.count_documents({"userId": user_id, "reason": "item_sale"}) == 0
