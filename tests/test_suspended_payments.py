"""A suspended player receiving a payment (issue 20, item 8). Decided: the
payment is credited and the player stays suspended. The money was taken by
the provider, so refusing the credit would leave a captured payment with no
balance behind it (and the provider would retry it); suspension blocks what
the player can *do* with the balance, not what they paid. Restoring the
player gives them their whole balance; a later refund of that payment takes
the credit back as usual."""

from __future__ import annotations

import asyncio

from tests.support.client import WAIT, connect_socket
from tests.support.invariants import assert_money_invariants
from tests.test_economy import funded_user


async def test_a_suspended_player_is_credited_and_stays_suspended(live):
    admin = await live.admin_token()
    token, user_id = await funded_user(live, "on_hold", 300)
    client, rec = await connect_socket(live.base_url, token=token)
    gone = asyncio.Event()
    client.on("disconnect", lambda *a: gone.set())
    suspended = await live.api.post(f"/api/admin/users/{user_id}/suspend", {"reason": "chargeback review"},
                                    token=admin)
    assert suspended.status == 200, suspended
    await asyncio.wait_for(gone.wait(), WAIT)

    paid = await live.api.pay(user_id, 1200, payment_id="while_suspended")
    assert paid.status == 200 and paid.body == {"success": True, "duplicate": False}, paid
    user = (await live.api.get(f"/api/admin/users/{user_id}", token=admin)).body["user"]
    assert user["balance"] == 1500 and user["deposited"] == 1500
    assert user["suspended"]["reason"] == "chargeback review", "still suspended"
    refused = await live.api.get("/api/profile", token=token)
    assert refused.status == 403 and refused.body["code"] == "account_suspended"
    assert f"balance:updated:{user_id}" not in rec.names(), "a suspended player's sockets get nothing"

    # A refund of that payment still takes the credit back, once.
    assert (await live.api.pay(user_id, 1200, payment_id="while_suspended", status="refunded")).status == 200
    assert (await live.api.post(f"/api/admin/users/{user_id}/restore", token=admin)).status == 200
    profile = await live.api.get("/api/profile", token=token)
    assert profile.status == 200 and profile.body["user"]["balance"] == 300
    await assert_money_invariants(live.db)
