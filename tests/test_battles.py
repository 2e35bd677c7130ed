"""Case battles end to end through a live server with real clients: the
contract, provable fairness (every draw recomputed by an independent
verifier), money and refunds, races, recovery and the back office."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from cyberhub.games.battles import reveal as battle_reveal
from cyberhub.server.lifecycle import recover_battles
from tests.support.battles import (
    CASES,
    assert_battle_invariants,
    create,
    make_cases,
    player,
    verify,
    wait_finished,
    watch,
)
from tests.support.client import connect_socket
from tests.support.invariants import assert_money_invariants

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def settings_overrides() -> dict:
    return {"battle_round_seconds": 0}


def weights(cases: list[dict]) -> dict[str, list[dict]]:
    return {case["id"]: CASES[i]["items"] for i, case in enumerate(cases)}


async def balance(live, user_id: str) -> int:
    return (await live.db.users.find_one({"_id": user_id}))["balance"]


async def check_all(live) -> None:
    await assert_money_invariants(live.db)
    await assert_battle_invariants(live.db)


# --- a whole battle -------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "crazy", "humans"), [
    ("1v1", False, 2), ("2v2", False, 4), ("1v1v1", True, 3), ("1v1v1v1", False, 1), ("2v2", True, 2)])
async def test_battle_runs_to_the_end_and_every_draw_verifies(live, mode, crazy, humans):
    cases = await make_cases(live)
    case_ids = [cases[0]["id"], cases[1]["id"], cases[0]["id"]]
    cost = 300 + 200 + 300
    players = [await player(live, f"{mode.replace('v', 'x')}{'c' if crazy else ''}p{i}", 5000) for i in range(humans)]
    lobby, lobby_events = await connect_socket(live.base_url)
    fair = (await live.api.get("/api/fair", token=players[0][0])).body["fair"]

    created = await create(live, players[0][0], case_ids, mode, crazy)
    assert created.status == 201, created
    battle = created.body["battle"]
    assert battle["status"] == "waiting" and battle["entryCost"] == cost and battle["crazy"] is crazy
    assert [c["caseId"] for c in battle["cases"]] == case_ids and battle["cases"][0]["caseVersion"] == 1
    assert battle["slots"][0]["userId"] == players[0][1] and battle["slots"][0]["clientSeed"] == fair["clientSeed"]
    assert battle["publicSeed"] is None and battle["serverSeed"] is None and len(battle["serverSeedHash"]) == 64
    assert battle["rounds"] == [] and battle["winners"] == []
    await lobby_events.wait_for("battles:updated", predicate=lambda d: d["battle"]["id"] == battle["id"])
    summary = lobby_events.of("battles:updated")[0]["battle"]
    assert "rounds" not in summary and "items" not in summary["cases"][0]

    client, events = await watch(live, battle["id"])
    for token, _ in players[1:]:
        joined = await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=token)
        assert joined.status == 200, joined
    if humans < len(battle["slots"]):
        filled = await live.api.post(f"/api/battles/{battle['id']}/bots", token=players[0][0])
        assert filled.status == 200, filled
    rounds, finished = await wait_finished(events, battle["id"], len(case_ids))
    await client.disconnect()
    await lobby.disconnect()

    final = (await live.api.get(f"/api/battles/{battle['id']}")).body["battle"]
    assert final["status"] == "finished" and final["finishedAt"] is not None
    assert finished == {"battleId": battle["id"], "winners": final["winners"], "totals": final["totals"],
                        "serverSeed": final["serverSeed"], "publicSeed": final["publicSeed"]}
    assert [r["results"] for r in rounds] == [[{**x, "item": {**x["item"], "itemId": None}} for x in r["results"]]
                                              for r in final["rounds"]]
    owners = verify(final, weights(cases))
    # Items: in the receiving winners' inventories, with the ids the rounds name.
    for r, rnd in enumerate(final["rounds"]):
        for result in rnd["results"]:
            owner = owners[(r, result["slot"])]
            item_id = result["item"]["itemId"]
            if owner is None:
                assert item_id is None
                continue
            stored = await live.db.inventory.find_one({"_id": item_id})
            assert stored["userId"] == final["slots"][owner]["userId"] and stored["name"] == result["item"]["name"]
    for token, user_id in players:
        listed = (await live.api.get("/api/inventory", token=token)).body["items"]
        mine = [o for o, slot in owners.items() if slot is not None and final["slots"][slot]["userId"] == user_id]
        assert len(listed) == len(mine)
        assert all(i["source"] == "battle" and i["battleId"] == battle["id"] for i in listed)
        assert await balance(live, user_id) == 5000 - cost
    owned = await live.db.inventory.find_one({"battleId": battle["id"]})
    if owned is not None:  # a battle item sells like any other, once
        seller = next(token for token, user_id in players if user_id == owned["userId"])
        sale = await live.api.post("/api/inventory/claim", {"itemId": owned["_id"]}, token=seller)
        assert sale.status == 200 and sale.body["amount"] == owned["price"], sale
        assert sale.body["balance"] == 5000 - cost + owned["price"]
        again = await live.api.post("/api/inventory/claim", {"itemId": owned["_id"]}, token=seller)
        assert again.status == 409
    stats = (await live.api.get("/api/admin/stats/battles", token=await live.admin_token())).body
    to_players = any(slot is not None for slot in owners.values())
    assert stats["battles"] == 1 and stats["entries"] == cost * humans and stats["refunds"] == 0
    assert (stats["paidToPlayers"], stats["keptByHouse"]) == \
        ((sum(final["totals"]), 0) if to_players else (0, sum(final["totals"])))
    await check_all(live)


async def test_bots_only_winner_gives_nothing_and_house_keeps_it(live):
    """A 1v1 against a bot, run until the bot wins once: nothing reaches an inventory."""
    cases = await make_cases(live)
    token, _ = await player(live, "lonely", 100_000)
    played, given = 0, {True: 0, False: 0}  # items' value by "a player won it"
    for _ in range(30):  # each battle has a fresh server seed: the bot wins about half of them
        played += 1
        battle = (await create(live, token, [cases[0]["id"]])).body["battle"]
        client, events = await watch(live, battle["id"])
        assert (await live.api.post(f"/api/battles/{battle['id']}/bots", token=token)).status == 200
        _, finished = await wait_finished(events, battle["id"], 1)
        await client.disconnect()
        final = (await live.api.get(f"/api/battles/{battle['id']}")).body["battle"]
        owners = verify(final, weights(cases))
        given[finished["winners"] == [0]] += sum(r["item"]["price"] for rnd in final["rounds"] for r in rnd["results"])
        if finished["winners"] == [1]:
            assert set(owners.values()) == {None}
            assert await live.db.inventory.count_documents({"battleId": battle["id"]}) == 0
            break
    else:
        pytest.fail("the bot never won in 30 battles")
    admin = await live.admin_token()
    stats = (await live.api.get("/api/admin/stats/battles", token=admin)).body
    assert stats["battles"] == played and stats["botSeats"] == played
    assert stats["entries"] == 300 * played and stats["keptByHouse"] == given[False] > 0
    assert stats["paidToPlayers"] == given[True]  # summed by the store's aggregation, to the unit
    await check_all(live)


# --- rules and errors --------------------------------------------------------------------------------


async def test_create_refusals_change_nothing(live):
    cases = await make_cases(live)
    token, user_id = await player(live, "thrifty", 499)
    poor = await create(live, token, [cases[0]["id"], cases[1]["id"]])
    assert poor.status == 409 and poor.body == {"success": False, "error": "Insufficient balance",
                                                "code": "insufficient_balance"}
    assert (await create(live, token, ["missing"])).status == 404
    too_many = await create(live, token, [cases[0]["id"]] * 26)
    assert too_many.status == 400 and too_many.body["code"] == "too_many_cases"  # bad input, not a conflict
    document = (await live.api.get("/api/openapi.json")).body  # which the served document says
    assert document["components"]["schemas"]["CreateBattleRequest"]["properties"]["caseIds"]["maxItems"] == 25
    assert (await create(live, token, [cases[0]["id"]], "3v3")).status == 400
    assert (await create(live, None, [cases[0]["id"]])).status == 401
    assert await live.db.battles.count_documents({}) == 0 and await balance(live, user_id) == 499
    await check_all(live)


async def test_at_most_three_waiting_battles_per_creator(live):
    cases = await make_cases(live)
    token, _ = await player(live, "hoarder", 10_000)
    for _ in range(3):
        assert (await create(live, token, [cases[1]["id"]])).status == 201
    fourth = await create(live, token, [cases[1]["id"]])
    assert fourth.status == 409 and fourth.body["code"] == "battle_limit"
    await check_all(live)


async def test_concurrent_creates_cannot_pass_the_open_battle_limit(live):
    """Six creates at once by one player: three open, three are refused and
    charged nothing; once one of the open battles starts, its slot is free again."""
    cases = await make_cases(live)
    token, user_id = await player(live, "rusher", 10_000)
    replies = await asyncio.gather(*(create(live, token, [cases[1]["id"]]) for _ in range(6)))
    assert sorted(r.status for r in replies) == [201] * 3 + [409] * 3, replies
    assert {r.body["code"] for r in replies if r.status == 409} == {"battle_limit"}
    assert await balance(live, user_id) == 10_000 - 3 * 200
    opened = [r.body["battle"]["id"] for r in replies if r.status == 201]
    assert (await live.api.post(f"/api/battles/{opened[0]}/bots", token=token)).status == 200
    assert (await create(live, token, [cases[1]["id"]])).status == 201
    assert (await create(live, token, [cases[1]["id"]])).status == 409
    await live.services.battles.close()
    await check_all(live)


async def test_join_refusals_and_leave_refunds(live):
    cases = await make_cases(live)
    (t0, u0), (t1, u1), (t2, u2) = [await player(live, f"seat{i}", 1000) for i in range(3)]
    battle = (await create(live, t0, [cases[0]["id"]], "1v1v1")).body["battle"]
    path = f"/api/battles/{battle['id']}"
    again = await live.api.post(f"{path}/join", {}, token=t0)
    assert again.status == 409 and again.body["code"] == "battle_already_joined"
    taken = await live.api.post(f"{path}/join", {"slot": 0}, token=t1)
    assert taken.status == 409 and taken.body["code"] == "battle_slot_taken"
    no_such = await live.api.post(f"{path}/join", {"slot": 3}, token=t1)  # slots 0-2: bad input, not a conflict
    assert no_such.status == 400 and no_such.body["code"] == "battle_slot_invalid", no_such
    joined = await live.api.post(f"{path}/join", {"slot": 2}, token=t1)
    assert joined.status == 200 and joined.body["battle"]["slots"][2]["userId"] == u1
    assert await balance(live, u1) == 700
    stranger = await live.api.post(f"{path}/leave", token=t2)
    assert stranger.status == 409 and stranger.body["code"] == "battle_not_joined"
    bots = await live.api.post(f"{path}/bots", token=t1)
    assert bots.status == 403 and bots.body["code"] == "battle_not_creator"
    left = await live.api.post(f"{path}/leave", token=t1)
    assert left.status == 200 and left.body["battle"]["slots"][2] is None
    assert await balance(live, u1) == 1000
    # The creator leaving cancels the battle and refunds everyone.
    assert (await live.api.post(f"{path}/join", {}, token=t2)).status == 200
    cancelled = await live.api.post(f"{path}/leave", token=t0)
    assert cancelled.status == 200 and cancelled.body["battle"]["status"] == "cancelled"
    assert [await balance(live, u) for u in (u0, u1, u2)] == [1000, 1000, 1000]
    late = await live.api.post(f"{path}/join", {}, token=t1)
    assert late.status == 409 and late.body["code"] == "battle_not_waiting"
    assert (await live.api.get("/api/battles/nope")).status == 404
    await check_all(live)


async def test_leave_after_the_start_is_refused(live):
    cases = await make_cases(live)
    (t0, _), (t1, _) = [await player(live, f"late{i}", 1000) for i in range(2)]
    battle = (await create(live, t0, [cases[1]["id"]])).body["battle"]
    client, events = await watch(live, battle["id"])
    assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).status == 200
    await wait_finished(events, battle["id"], 1)
    await client.disconnect()
    for token in (t0, t1):
        refused = await live.api.post(f"/api/battles/{battle['id']}/leave", token=token)
        assert refused.status == 409 and refused.body["code"] == "battle_started"
    full = await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)
    assert full.status == 409 and full.body["code"] == "battle_not_waiting"
    await check_all(live)


async def test_rounds_are_revealed_one_by_one(start_live):
    """With a round time, a battle is first seen running with no round revealed:
    every draw was stored at the start, nothing is shown before its time."""
    live = await start_live(battle_round_seconds=3600)
    cases = await make_cases(live)
    (t0, _), (t1, _) = [await player(live, f"slow{i}", 1000) for i in range(2)]
    battle = (await create(live, t0, [cases[1]["id"]])).body["battle"]
    joined = (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).body["battle"]
    assert joined["status"] == "running" and joined["rounds"] == [] and joined["totals"] == [0, 0]
    assert joined["publicSeed"] is not None and joined["serverSeed"] is None and joined["winners"] == []
    stored = await live.db.battles.find_one({"_id": battle["id"]})
    assert len(stored["draws"]) == 1 and stored["revealed"] == 0
    await live.services.battles.close()


# --- lists and the back office ---------------------------------------------------------------------


async def test_lobby_list_filters_and_pages(live):
    cases = await make_cases(live)
    tokens = [await player(live, f"lister{i}", 5000) for i in range(3)]
    made = [(await create(live, token, [cases[1]["id"]])).body["battle"]["id"] for token, _ in tokens for _ in (0, 1)]
    cancelled = await live.api.post(f"/api/battles/{made[0]}/leave", token=tokens[0][0])
    assert cancelled.status == 200
    seen, cursor = [], ""
    while True:
        page = (await live.api.get(f"/api/battles?status=waiting&limit=2&cursor={cursor}")).body
        seen += [b["id"] for b in page["battles"]]
        assert all(b["status"] == "waiting" and "rounds" not in b for b in page["battles"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made[1:]) and len(seen) == 5
    only = (await live.api.get("/api/battles?status=cancelled")).body["battles"]
    assert [b["id"] for b in only] == [made[0]]
    assert (await live.api.get("/api/battles?status=nope")).status == 400
    admin = await live.admin_token()
    mine = (await live.api.get(f"/api/admin/battles?userId={tokens[1][1]}", token=admin)).body["battles"]
    assert sorted(b["id"] for b in mine) == sorted(made[2:4])
    assert (await live.api.get("/api/admin/battles", token=tokens[0][0])).status == 403
    stats = (await live.api.get("/api/admin/stats/battles", token=admin)).body
    assert stats["entries"] == 6 * 200 and stats["refunds"] == 200 and stats["cancelled"] == 1


async def test_battle_draws_count_in_the_case_rtp(live):
    cases = await make_cases(live)
    (t0, _), (t1, _) = [await player(live, f"rtp{i}", 5000) for i in range(2)]
    battle = (await create(live, t0, [cases[1]["id"]] * 3)).body["battle"]
    client, events = await watch(live, battle["id"])
    assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).status == 200
    await wait_finished(events, battle["id"], 3)
    await client.disconnect()
    final = (await live.api.get(f"/api/battles/{battle['id']}")).body["battle"]
    per_case = (await live.api.get("/api/admin/stats/cases", token=await live.admin_token())).body["cases"]
    beta = next(c for c in per_case if c["caseId"] == cases[1]["id"])
    assert beta["openings"] == 6 and beta["payout"] == sum(final["totals"])


# --- races ------------------------------------------------------------------------------------------


async def test_two_players_for_the_last_seat(live):
    cases = await make_cases(live)
    for n in range(6):
        (t0, _), (t1, u1), (t2, u2) = [await player(live, f"last{n}x{i}", 1000) for i in range(3)]
        battle = (await create(live, t0, [cases[1]["id"]])).body["battle"]
        a, b = await asyncio.gather(*(live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t)
                                      for t in (t1, t2)))
        assert sorted([a.status, b.status]) == [200, 409], (a, b)
        loser, loser_id = (b, u2) if a.status == 200 else (a, u1)
        assert loser.body["code"] in ("battle_full", "battle_not_waiting")
        assert await balance(live, loser_id) == 1000  # never charged
        assert await live.db.ledger.count_documents({"userId": loser_id, "reason": "battle_entry"}) == 0
    await live.services.battles.close()
    await check_all(live)


async def test_same_player_joining_twice_at_once(live):
    cases = await make_cases(live)
    token0, _ = await player(live, "host", 1000)
    token, user_id = await player(live, "eager", 1000)
    battle = (await create(live, token0, [cases[1]["id"]], "1v1v1v1")).body["battle"]
    # Different seats at once too: only the "not already seated" guard of the seat's
    # compare-and-set stops two of them.
    replies = await asyncio.gather(*(live.api.post(f"/api/battles/{battle['id']}/join", body, token=token)
                                     for body in ({"slot": 1}, {"slot": 2}, {"slot": 3}, {}, {"slot": 2})))
    assert sorted(r.status for r in replies) == [200, 409, 409, 409, 409], replies
    assert {r.body["code"] for r in replies if r.status == 409} == {"battle_already_joined"}
    assert await balance(live, user_id) == 800
    await check_all(live)


async def test_join_racing_leave_and_cancel(live):
    cases = await make_cases(live)
    for n in range(6):
        (t0, u0), (t1, u1), (t2, u2) = [await player(live, f"racer{n}x{i}", 1000) for i in range(3)]
        battle = (await create(live, t0, [cases[1]["id"]], "1v1v1v1")).body["battle"]
        path = f"/api/battles/{battle['id']}"
        assert (await live.api.post(f"{path}/join", {}, token=t1)).status == 200
        # u2 joins while u1 leaves and, in odd rounds, the creator cancels.
        calls = [live.api.post(f"{path}/join", {}, token=t2), live.api.post(f"{path}/leave", token=t1)]
        if n % 2:
            calls.append(live.api.post(f"{path}/leave", token=t0))
        joined, left, *cancel = await asyncio.gather(*calls)
        final = await live.db.battles.find_one({"_id": battle["id"]})
        seated = {s["userId"] for s in final["slots"] if s is not None}
        if not cancel:  # four seats, three players: nothing can refuse either request
            assert joined.status == 200 and u2 in _ids(joined.body["battle"]), joined
            assert left.status == 200 and u1 not in _ids(left.body["battle"]), left
            assert final["status"] == "waiting" and seated == {u0, u2}
            assert [await balance(live, u) for u in (u0, u1, u2)] == [800, 1000, 800]
        else:  # the cancel always wins its battle; each other request went before it (200) or after it (409)
            assert cancel[0].status == 200 and cancel[0].body["battle"]["status"] == "cancelled", cancel
            assert final["status"] == "cancelled"
            for reply in (joined, left):
                assert reply.status == 200 or (reply.status == 409 and reply.body["code"] == "battle_not_waiting"), \
                    (joined, left, cancel)
            if left.status == 200:
                assert u1 not in _ids(left.body["battle"]), left
            assert [await balance(live, u) for u in (u0, u1, u2)] == [1000, 1000, 1000]
            # u2 paid only if it was seated before the cancel, and then was refunded once.
            entries = await live.db.ledger.count_documents({"userId": u2, "reason": "battle_entry"})
            refunds = await live.db.ledger.count_documents({"userId": u2, "reason": "battle_refund"})
            assert entries == refunds <= 1
            if joined.status == 200:
                assert entries == 1
        await check_all(live)


def _ids(battle: dict) -> set[str]:
    return {s["userId"] for s in battle["slots"] if s is not None}


# --- waiting too long, restarts ----------------------------------------------------------------------


async def test_waiting_too_long_is_cancelled_and_refunded_by_recovery(live):
    cases = await make_cases(live)
    (t0, u0), (t1, u1) = [await player(live, f"patient{i}", 1000) for i in range(2)]
    battle = (await create(live, t0, [cases[1]["id"]], "1v1v1")).body["battle"]
    assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).status == 200
    await recover_battles(live.services)  # not old enough yet
    assert (await live.db.battles.find_one({"_id": battle["id"]}))["status"] == "waiting"
    stored = await live.db.battles.find_one({"_id": battle["id"]})
    await live.db.battles.update_one({"_id": battle["id"]},
                                     {"$set": {"createdAt": stored["createdAt"] - timedelta(minutes=31)}})
    watcher, events = await connect_socket(live.base_url, token=t1)
    await recover_battles(live.services)
    after = (await live.api.get(f"/api/battles/{battle['id']}")).body["battle"]
    assert after["status"] == "cancelled"
    assert [await balance(live, u) for u in (u0, u1)] == [1000, 1000]
    await events.wait_for(f"balance:updated:{u1}", predicate=lambda d: d["balance"] == 1000)
    await watcher.disconnect()
    await check_all(live)


async def test_restart_resumes_the_reveal_from_the_stored_draws(start_live):
    """The process revealing a battle dies after its start; the next one's
    start-up recovery reveals the rounds it stored and settles exactly once."""
    first = await start_live(battle_round_seconds=3600)
    cases = await make_cases(first)
    (t0, _), (t1, _) = [await player(first, f"phoenix{i}", 5000) for i in range(2)]
    battle = (await create(first, t0, [cases[0]["id"], cases[1]["id"]], "1v1")).body["battle"]
    assert (await first.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).status == 200
    stored = await first.db.battles.find_one({"_id": battle["id"]})
    await first.services.battles.close()  # the process dies before any reveal

    second = await start_live(battle_round_seconds=0)  # start-up recovery resumes the battle
    client, events = await watch(second, battle["id"])
    if (await second.db.battles.find_one({"_id": battle["id"]}))["status"] != "finished":
        await events.wait_for("battle:finished")
    await client.disconnect()
    final = (await second.api.get(f"/api/battles/{battle['id']}")).body["battle"]
    assert final["publicSeed"] == stored["publicSeed"]
    assert [[x["item"]["name"] for x in r["results"]] for r in final["rounds"]] == \
        [[x["item"]["name"] for x in row] for row in stored["draws"]]
    verify(final, weights(cases))
    # Settling again (another pass, another process) changes nothing.
    done = await second.db.battles.find_one({"_id": battle["id"]})
    items = await second.db.inventory.count_documents({"battleId": battle["id"]})
    assert await battle_reveal.settle(second.db, done) is None
    assert await second.db.inventory.count_documents({"battleId": battle["id"]}) == items
    await check_all(second)


async def test_readme_verifier_accepts_a_finished_battle(live):
    """The verifier snippet of README.md ("Case battles") run as a user would run it."""
    text = README.read_text()
    section = text[text.index("## Case battles"):]
    snippet = section[section.index("```python\n") + 10:section.index("```\n\n(`tests/test_battles.py`")]
    cases = await make_cases(live)
    (t0, _), (t1, _) = [await player(live, f"readme{i}", 5000) for i in range(2)]
    battle = (await create(live, t0, [cases[0]["id"], cases[1]["id"]], "2v2")).body["battle"]
    client, events = await watch(live, battle["id"])
    assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).status == 200
    assert (await live.api.post(f"/api/battles/{battle['id']}/bots", token=t0)).status == 200
    await wait_finished(events, battle["id"], 2)
    await client.disconnect()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", snippet, live.base_url, battle["id"],
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.decode().startswith("verified"), out.decode()


async def test_unwatch_leaves_the_room_and_watch_checks_its_input(live):
    cases = await make_cases(live)
    (t0, _), (t1, _), (t2, _), (t3, _) = [await player(live, f"room{i}", 1000) for i in range(4)]
    left = (await create(live, t0, [cases[1]["id"]])).body["battle"]
    kept = (await create(live, t2, [cases[1]["id"]])).body["battle"]
    client, events = await watch(live, left["id"])
    assert (await client.call("battle:watch", {"battleId": kept["id"]}, timeout=10))["success"] is True
    assert await client.call("battle:unwatch", {"battleId": left["id"]}, timeout=10) == {"success": True}
    for bad in (None, {}, {"battleId": 7}, {"battleId": "x" * 129}):
        refused = await client.call("battle:watch", bad, timeout=10)
        assert refused["success"] is False and refused["code"] == "invalid_battle_id", refused
    other, other_events = await watch(live, left["id"])
    assert (await live.api.post(f"/api/battles/{left['id']}/join", {}, token=t1)).status == 200
    await wait_finished(other_events, left["id"], 1)
    assert (await live.api.post(f"/api/battles/{kept['id']}/join", {}, token=t3)).status == 200
    # One connection keeps the server's order: had the first battle's events been sent
    # to this socket, they would have arrived before the second battle's end.
    await wait_finished(events, kept["id"], 1)
    assert [d["battleId"] for d in events.of("battle:round") + events.of("battle:finished")] == [kept["id"]] * 2
    await client.disconnect()
    await other.disconnect()


async def test_back_office_money_counts_battle_entries_and_refunds(live):
    """The site's net and a player's battleSpent/net include battle money:
    entries paid, less refunds (a leave here); a player's net still equals
    deposited − reversed + adjusted − balance."""
    cases = await make_cases(live)
    admin = await live.admin_token()
    (t0, u0), (t1, u1) = [await player(live, f"office{i}", 1000) for i in range(2)]
    battle = (await create(live, t0, [cases[0]["id"]], "1v1v1")).body["battle"]
    assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).status == 200
    assert (await live.api.post(f"/api/battles/{battle['id']}/leave", token=t1)).status == 200

    site = (await live.api.get("/api/admin/stats", token=admin)).body
    assert (site["battleEntries"], site["battleRefunds"], site["net"]) == (600, 300, 300), site
    series = (await live.api.get("/api/admin/stats/timeseries?bucket=day", token=admin)).body["series"]
    assert sum(b["net"] for b in series) == 300 and sum(b["battleEntries"] for b in series) == 600
    for user_id, spent in ((u0, 300), (u1, 0)):
        user = (await live.api.get(f"/api/admin/users/{user_id}", token=admin)).body["user"]
        assert user["battleSpent"] == spent and user["net"] == spent, user
        assert user["net"] == user["deposited"] - user["reversed"] + user["adjusted"] - user["balance"]
