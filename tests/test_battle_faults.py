"""Failure half-way through every battle money path: creating (with and
without an Idempotency-Key), joining, the join that fills the battle and
starts it, leaving, the creator's cancel. Each write is failed before it
reaches the store and after it was applied with the reply lost; then
recovery runs, the invariants hold, and a retry moves no money twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from cyberhub.games.battles import reveal as battle_reveal
from cyberhub.games.battles import seats as battle_seats
from cyberhub.server import recovery
from cyberhub.server.lifecycle import recover_battles
from tests.support.battles import assert_battle_invariants, create, make_cases, player, watch
from tests.support.chaos import assert_store_outage_answer, failure_points
from tests.support.invariants import assert_money_invariants


@pytest.fixture
def settings_overrides() -> dict:
    # A started battle waits an hour before its first reveal: only the request's own writes are counted.
    return {"battle_round_seconds": 3600}


@dataclass
class Scenario:
    prepare: Callable[[object, int, dict], Awaitable[dict]]
    act: Callable[[object, dict], Awaitable[object]]
    check: Callable[[object, dict], Awaitable[None]]


async def balance(live, user_id: str) -> int:
    return (await live.db.users.find_one({"_id": user_id}))["balance"]


# --- create -------------------------------------------------------------------------------


def _create(key: bool) -> Scenario:
    async def prepare(live, n, shared):
        token, user_id = await player(live, f"maker{n}", 1000)
        return {"token": token, "user_id": user_id, "headers": {"Idempotency-Key": f"b-{n}"} if key else {},
                "case": shared["cases"][0]["id"]}

    async def act(live, ctx):
        return await create(live, ctx["token"], [ctx["case"]], "1v1", headers=ctx["headers"])

    async def check(live, ctx):
        mine = await live.db.battles.find({"createdBy": ctx["user_id"]}).to_list(None)
        assert len(mine) <= 1
        if mine:
            assert mine[0]["status"] == "waiting" and mine[0]["paid"] == 1
        assert await balance(live, ctx["user_id"]) == (700 if mine else 1000)
        if key:  # the retry answers the first battle, or creates it once
            retry = await act(live, ctx)
            assert retry.status == 201, retry  # as the first answer, replayed or not
            assert await live.db.battles.count_documents({"createdBy": ctx["user_id"]}) == 1
            assert await balance(live, ctx["user_id"]) == 700

    return Scenario(prepare, act, check)


# --- join ---------------------------------------------------------------------------------


def _join(mode: str) -> Scenario:
    async def prepare(live, n, shared):
        host, _ = await player(live, f"host{mode}{n}", 1000)
        token, user_id = await player(live, f"guest{mode}{n}", 1000)
        battle = (await create(live, host, [shared["cases"][0]["id"]], mode)).body["battle"]
        return {"token": token, "user_id": user_id, "battle": battle["id"]}

    async def act(live, ctx):
        return await live.api.post(f"/api/battles/{ctx['battle']}/join", {}, token=ctx["token"])

    async def check(live, ctx):
        battle = await live.db.battles.find_one({"_id": ctx["battle"]})
        seated = any(s is not None and s["userId"] == ctx["user_id"] for s in battle["slots"])
        assert await balance(live, ctx["user_id"]) == (700 if seated else 1000)
        if mode == "1v1" and seated:  # the last seat: recovery started it if the request did not
            assert battle["status"] == "running" and len(battle["draws"]) == 1
        retry = await act(live, ctx)
        assert retry.status == (409 if seated else 200), retry
        assert await balance(live, ctx["user_id"]) == 700

    return Scenario(prepare, act, check)


# --- leave and cancel ---------------------------------------------------------------------


def _leave(creator: bool) -> Scenario:
    async def prepare(live, n, shared):
        host, host_id = await player(live, f"owner{creator}{n}", 1000)
        token, user_id = await player(live, f"quitter{creator}{n}", 1000)
        battle = (await create(live, host, [shared["cases"][0]["id"]], "1v1v1")).body["battle"]
        assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=token)).status == 200
        return {"token": host if creator else token, "user_id": host_id if creator else user_id,
                "others": [user_id] if creator else [], "battle": battle["id"]}

    async def act(live, ctx):
        return await live.api.post(f"/api/battles/{ctx['battle']}/leave", token=ctx["token"])

    async def check(live, ctx):
        battle = await live.db.battles.find_one({"_id": ctx["battle"]})
        gone = battle["status"] == "cancelled" or not any(
            s is not None and s["userId"] == ctx["user_id"] for s in battle["slots"])
        for user_id in [ctx["user_id"], *ctx["others"]]:
            assert await balance(live, user_id) == (1000 if gone else 700)
        if not gone:  # the leave never happened: the retry does it, once
            assert (await act(live, ctx)).status == 200
        for user_id in [ctx["user_id"], *ctx["others"]]:
            assert await balance(live, user_id) == 1000

    return Scenario(prepare, act, check)


SCENARIOS = {
    "create": _create(key=False),
    "create_with_idempotency_key": _create(key=True),
    "join": _join("1v1v1"),
    "join_last_seat_starts": _join("1v1"),
    "leave": _leave(creator=False),
    "creator_cancel": _leave(creator=True),
}


@pytest.mark.parametrize("name", SCENARIOS)
async def test_battle_failure_after_every_step_then_recovery(live, name):
    scenario = SCENARIOS[name]
    shared = {"cases": await make_cases(live)}
    clean = await scenario.prepare(live, 0, shared)
    reply, writes = await live.chaos.record(scenario.act(live, clean))
    assert reply.status in (200, 201)
    assert len(writes) >= 3, writes

    for point in failure_points(writes):
        ctx = await scenario.prepare(live, point.n, shared)
        reply = await live.chaos.cut_off(point, scenario.act(live, ctx))
        assert_store_outage_answer(reply, point)
        await recovery.recover(live.db, grace_seconds=0)
        await recover_battles(live.services)
        await assert_money_invariants(live.db)
        await assert_battle_invariants(live.db)
        await scenario.check(live, ctx)
        await assert_money_invariants(live.db)
        await assert_battle_invariants(live.db)


def quiet_runner(live) -> battle_reveal.BattleRunner:
    """A reveal runner with no wait between rounds, driven by the test itself."""
    return battle_reveal.BattleRunner(live.services.db, live.services.battles.events, live.services.notifier, 0)


async def running_battle(live, cases: list[dict], name: str) -> str:
    """A 1v1 battle of two cases, full and started, whose serving runner is stopped
    (it waits an hour between rounds): the test's quiet runner reveals it."""
    (t0, _), (t1, _) = [await player(live, f"{name}x{i}", 1000) for i in range(2)]
    battle = (await create(live, t0, [cases[0]["id"], cases[1]["id"]], "1v1")).body["battle"]
    assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=t1)).status == 200
    await live.services.battles.close()
    return battle["id"]


async def test_reveal_and_settle_fail_at_every_write_then_resume_once(live):
    """A running battle's reveal loop fails at each of its writes (before and
    after it is applied); running it again (as the recovery pass does) finishes
    the battle from the stored draws: every item once, the draws recorded once."""
    cases = await make_cases(live)
    quiet = quiet_runner(live)
    first = await running_battle(live, cases, "reveal0")
    _, writes = await live.chaos.record(quiet.run(first))
    assert (await live.db.battles.find_one({"_id": first}))["status"] == "finished"
    assert len(writes) >= 2 + 4 + 1, writes  # two reveals, the draws (and items), the finish

    for point in failure_points(writes):
        battle_id = await running_battle(live, cases, f"reveal{point.n}")
        await live.chaos.cut_off(point, quiet.run(battle_id))
        await quiet.run(battle_id)  # resumed, as by the recovery pass
        battle = await live.db.battles.find_one({"_id": battle_id})
        assert battle["status"] == "finished" and battle["revealed"] == 2, point.where
        assert await live.db.battle_draws.count_documents({"battleId": battle_id}) == 4
        await assert_money_invariants(live.db)
        await assert_battle_invariants(live.db)


async def _key_left_running(live, user_id: str, key: str) -> dict:
    """The request behind `key` died after its operation finished: its answer was never stored."""
    doc = await live.db.idempotency_keys.find_one_and_update(
        {"_id": f"{user_id}:{key}"}, {"$set": {"state": "running"}, "$unset": {"response": ""}})
    return doc


async def test_recovery_replays_a_keyed_create_with_its_201(live):
    cases = await make_cases(live)
    token, user_id = await player(live, "replayed", 1000)
    first = await create(live, token, [cases[0]["id"]], headers={"Idempotency-Key": "k1"})
    assert first.status == 201, first
    await _key_left_running(live, user_id, "k1")

    report = await recovery.recover(live.db, grace_seconds=0)
    assert report.keys_settled == 1
    retry = await create(live, token, [cases[0]["id"]], headers={"Idempotency-Key": "k1"})
    assert retry.status == 201 and retry.body["battle"]["id"] == first.body["battle"]["id"], retry
    assert await balance(live, user_id) == 700
    await assert_money_invariants(live.db)


async def test_a_keyed_create_that_ended_refunded_frees_its_key(live):
    """The create's entry finished through the refund path (recovery deleted
    the creating battle, then the stalled debit landed and complete_entry
    refunded it): recovery has no battle to replay, so it forgets the key
    instead of failing on it every pass, and the retry creates the battle."""
    cases = await make_cases(live)
    token, user_id = await player(live, "refunded", 1000)
    first = await create(live, token, [cases[0]["id"]], headers={"Idempotency-Key": "k2"})
    assert first.status == 201, first
    key = await _key_left_running(live, user_id, "k2")
    op = await live.db.operations.find_one({"_id": key["opId"]})
    await live.db.battles.delete_one({"_id": op["battleId"]})
    with pytest.raises(battle_seats.Conflict):  # the refund path, as the late debit takes it
        await battle_seats.complete_entry(live.db, op, balance_after=None)
    assert await balance(live, user_id) == 1000

    report = await recovery.recover(live.db, grace_seconds=0)
    assert report.keys_settled == 1 and not report.failed
    assert await live.db.idempotency_keys.count_documents({"_id": f"{user_id}:k2"}) == 0
    retry = await create(live, token, [cases[0]["id"]], headers={"Idempotency-Key": "k2"})
    assert retry.status == 201 and retry.body["battle"]["id"] != first.body["battle"]["id"], retry
    assert await balance(live, user_id) == 700
    await assert_money_invariants(live.db)
    await assert_battle_invariants(live.db)


async def test_a_leave_retried_after_a_crash_before_its_seat_change_finishes_it(live):
    """The leave's record was written, then the process died before the seat
    change: the player is still seated and charged. The retry (before any
    recovery pass) finishes that leave, refunded once, instead of answering
    "not in this battle"."""
    cases = await make_cases(live)
    host, _ = await player(live, "stayhost", 1000)
    token, user_id = await player(live, "stayer", 1000)
    battle = (await create(live, host, [cases[0]["id"]], "1v1v1")).body["battle"]
    assert (await live.api.post(f"/api/battles/{battle['id']}/join", {}, token=token)).status == 200
    live.chaos.arm(2)  # after the leave record (write 1): the seat change never reaches the store
    died = await live.api.post(f"/api/battles/{battle['id']}/leave", token=token)
    writes = list(live.chaos.writes)
    live.chaos.disarm()
    assert writes[0] == ("operations", "insert_one") and writes[1][0] == "battles", writes
    assert died.status == 503, died
    assert await balance(live, user_id) == 700

    retry = await live.api.post(f"/api/battles/{battle['id']}/leave", token=token)
    assert retry.status == 200, retry
    assert all(s is None or s["userId"] != user_id for s in retry.body["battle"]["slots"])
    assert await balance(live, user_id) == 1000
    again = await live.api.post(f"/api/battles/{battle['id']}/leave", token=token)
    assert again.status == 409 and again.body["code"] == "battle_not_joined", again
    assert await balance(live, user_id) == 1000
    await assert_money_invariants(live.db)
    await assert_battle_invariants(live.db)


async def test_no_battle_event_is_lost_to_a_crash_in_the_reveal(live):
    """A crash at each write of the reveal and settlement (before it is applied,
    and after it with the reply lost: between a reveal's compare-and-set and
    its battle:round, or the finish and battle:finished), then a recovery
    pass: a watcher still gets every round and the end (at least once)."""
    cases = await make_cases(live)
    quiet = quiet_runner(live)
    first = await running_battle(live, cases, "told0")
    _, writes = await live.chaos.record(quiet.run(first))

    for point in failure_points(writes):
        battle_id = await running_battle(live, cases, f"told{point.n}")
        client, events = await watch(live, battle_id)
        await live.chaos.cut_off(point, quiet.run(battle_id))
        await battle_reveal.recover(live.db, quiet, grace_seconds=0, waiting_minutes=60)
        await asyncio.gather(*quiet.tasks.values())
        await events.wait_for("battle:finished", predicate=lambda d, b=battle_id: d["battleId"] == b)
        rounds = {d["round"] for d in events.of("battle:round") if d["battleId"] == battle_id}
        assert rounds == {0, 1}, point.where
        await client.disconnect()
        stored = await live.db.battles.find_one({"_id": battle_id})
        assert stored["announced"] == 2 and stored["finishAnnounced"] is True, point.where
