"""Helpers for the case battle tests: cases, players, a battle run to its end,
an independent verifier of every draw, and the battles' own invariants."""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

from tests.support.client import connect_socket
from tests.test_economy import create_case, funded_user

CASES = [
    {"name": "Alpha", "price": 300, "items": [
        {"name": "Pebble", "rarity": "common", "price": 50, "weight": 60},
        {"name": "Blade", "rarity": "rare", "price": 400, "weight": 30},
        {"name": "Crown", "rarity": "legendary", "price": 2500, "weight": 10}]},
    {"name": "Beta", "price": 200, "items": [
        {"name": "Coin", "rarity": "common", "price": 100, "weight": 3},
        {"name": "Ring", "rarity": "epic", "price": 700, "weight": 1}]},
]


async def make_cases(live: Any) -> list[dict]:
    return [await create_case(live, case) for case in CASES]


async def player(live: Any, name: str, amount: int) -> tuple[str, str]:
    return await funded_user(live, name, amount)


async def create(live: Any, token: str, case_ids: list[str], mode: str = "1v1", crazy: bool = False,
                 headers: dict | None = None) -> Any:
    return await live.api.post("/api/battles", {"caseIds": case_ids, "mode": mode, "crazy": crazy}, token=token,
                               headers=headers)


async def watch(live: Any, battle_id: str) -> tuple[Any, Any]:
    """An anonymous socket watching the battle (events recorded)."""
    client, recorder = await connect_socket(live.base_url)
    ack = await client.call("battle:watch", {"battleId": battle_id}, timeout=10)
    assert ack["success"] is True and ack["battle"]["id"] == battle_id, ack
    return client, recorder


async def wait_finished(recorder: Any, battle_id: str, rounds: int) -> tuple[list[dict], dict]:
    finished = (await recorder.wait_for("battle:finished", predicate=lambda d: d["battleId"] == battle_id))[0]
    revealed = [d for d in recorder.of("battle:round") if d["battleId"] == battle_id]
    assert [d["round"] for d in revealed] == list(range(rounds)), "rounds lost, repeated or out of order"
    return revealed, finished


# --- the verifier: written from the README's rules, sharing no code with the server -----------


def _float(key: str, message: str) -> float:
    d = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return d[0] / 256 + d[1] / 256 ** 2 + d[2] / 256 ** 3 + d[3] / 256 ** 4


def verify(battle: dict, weights_by_case: dict[str, list[dict]]) -> dict[tuple[int, int], int | None]:
    """Recompute every draw, the totals, the winners and who gets each item
    of a finished battle from its revealed seeds. Returns (round, slot) -> receiving slot."""
    assert battle["status"] == "finished"
    seed = battle["serverSeed"]
    assert hashlib.sha256(seed.encode()).hexdigest() == battle["serverSeedHash"]
    public = hashlib.sha256(":".join(s["clientSeed"] for s in battle["slots"]).encode()).hexdigest()
    assert battle["publicSeed"] == public
    totals = [0] * len(battle["slots"])
    drawn = []
    for r, rnd in enumerate(battle["rounds"]):
        assert rnd["round"] == r
        items = weights_by_case[battle["cases"][r]["caseId"]]
        assert [(i["name"], i["weight"]) for i in battle["cases"][r]["items"]] == \
            [(i["name"], i["weight"]) for i in items], "the battle lists the odds it drew with"
        total = sum(i["weight"] for i in items)
        for s, result in enumerate(rnd["results"]):
            assert result["slot"] == s
            ticket = math.floor(_float(seed, f"{public}:{r}:{s}") * total)
            upper, expected = 0, None
            for item in items:
                upper += item["weight"]
                if ticket < upper:
                    expected = item
                    break
            assert result["item"]["name"] == expected["name"] and result["item"]["price"] == expected["price"]
            totals[s] += expected["price"]
            drawn.append((expected["price"], r, s))
    assert battle["totals"] == totals
    teams = {"1v1": [0, 1], "1v1v1": [0, 1, 2], "1v1v1v1": [0, 1, 2, 3], "2v2": [0, 0, 1, 1]}[battle["mode"]]
    team_totals: dict[int, int] = {}
    for s, t in enumerate(teams):
        team_totals[t] = team_totals.get(t, 0) + totals[s]
    target = min(team_totals.values()) if battle["crazy"] else max(team_totals.values())
    tied = [t for t in sorted(team_totals) if team_totals[t] == target]
    best = max(tied, key=lambda t: _float(seed, f"{public}:tiebreak:{t}"))
    winners = [s for s, t in enumerate(teams) if t == best]
    assert battle["winners"] == winners
    humans = [s for s in winners if not battle["slots"][s]["bot"]]
    owner: dict[tuple[int, int], int | None] = {(r, s): None for _, r, s in drawn}
    if humans:
        share = dict.fromkeys(humans, 0)
        for price, r, s in sorted(drawn, key=lambda t: (-t[0], t[1], t[2])):
            to = min(humans, key=lambda h: (share[h], h))
            owner[(r, s)] = to
            share[to] += price
    return owner


async def assert_battle_invariants(db: Any) -> None:
    """Every entry debited once and refunded at most once; a finished battle's
    human seats paid and not refunded; a cancelled battle's seats refunded;
    every item of a finished battle with players in exactly one winner's inventory."""
    ledger = await db.ledger.find({"reason": {"$in": ["battle_entry", "battle_refund"]}}).to_list(None)
    entries = {e["_id"]: e for e in ledger if e["reason"] == "battle_entry"}
    refunds = {e["_id"].removeprefix("refund:"): e for e in ledger if e["reason"] == "battle_refund"}
    assert set(refunds) <= set(entries), "a refund of an entry never paid"
    for entry_id, refund in refunds.items():
        assert refund["delta"] == -entries[entry_id]["delta"] and refund["userId"] == entries[entry_id]["userId"]
    for battle in await db.battles.find({}).to_list(None):
        seats = [s for s in battle["slots"] if s is not None and not s["bot"]]
        mine = [e for e in entries.values() if e["refId"] == battle["_id"]]
        for entry in mine:
            assert entry["delta"] == -battle["entryCost"]
        if battle["status"] in ("waiting", "running", "finished"):
            # No operation is pending here: every seat is paid, once, and every other entry was refunded.
            for seat in seats:
                assert seat["paid"] and seat["entryOp"] in entries and seat["entryOp"] not in refunds, seat
            seated_ops = {s["entryOp"] for s in seats}
            assert all(e["_id"] in refunds for e in mine if e["_id"] not in seated_ops), "left without refund"
            assert battle["paid"] == len(seats) + sum(1 for s in battle["slots"] if s is not None and s["bot"])
            assert battle["seated"] == sum(1 for s in battle["slots"] if s is not None)
        if battle["status"] == "cancelled":
            assert all(e["_id"] in refunds for e in mine), "cancelled without refunding everyone"
        if battle["status"] == "finished":
            items = await db.inventory.find({"battleId": battle["_id"]}).to_list(None)
            owners = [r.get("owner") for row in battle["draws"] for r in row]
            assert len(items) == (0 if owners[0] is None else len(owners))
        else:
            assert await db.inventory.count_documents({"battleId": battle["_id"]}) == 0
