"""The case catalogue through the real server: admin create / replace / delete,
versions, validation, and the `cases:updated` event on both transports."""

from __future__ import annotations

import asyncio
import copy
import os

import pytest
import socketio

from tests.support.client import WAIT, connect_socket

TRANSPORTS = [["websocket"], ["polling"]]


async def catalogue_state(db) -> dict:
    """Everything the catalogue stores, for before/after comparisons."""
    return {
        "cases": await db.cases.find({}).sort("_id", 1).to_list(None),
        "case_versions": await db.case_versions.find({}).sort("_id", 1).to_list(None),
    }


async def listed(live) -> list[dict]:
    reply = await live.api.get("/api/cases")
    assert reply.status == 200 and reply.body["success"] is True, reply
    return reply.body["cases"]


async def create(live, token: str, body: dict) -> dict:
    reply = await live.api.post("/api/admin/cases", body, token=token)
    assert reply.status == 201, reply
    assert reply.body["success"] is True
    return reply.body["case"]


def assert_stats(case: dict, body: dict) -> None:
    """`chance`, `expectedValue` and `rtp` as README.md ("REST API") defines them, for input `body`."""
    total = sum(i["weight"] for i in body["items"])
    assert [i["name"] for i in case["items"]] == [i["name"] for i in body["items"]]
    for out, given in zip(case["items"], body["items"], strict=True):
        assert out["weight"] == given["weight"] and out["price"] == given["price"]
        assert out["chance"] == pytest.approx(given["weight"] / total)
        assert isinstance(out["price"], int) and isinstance(out["weight"], int)
    expected = sum(i["weight"] / total * i["price"] for i in body["items"])
    assert case["expectedValue"] == pytest.approx(expected)
    assert case["rtp"] == pytest.approx(expected / body["price"])
    assert sum(i["chance"] for i in case["items"]) == pytest.approx(1.0)


# --- create / replace / delete ------------------------------------------------


async def test_create_is_listed_with_chances_expected_value_and_rtp(live, sample_case):
    """A created case appears in GET /api/cases with its derived figures (README.md)."""
    token = await live.admin_token()
    created = await create(live, token, sample_case)
    assert created["version"] == 1 and created["name"] == "Starter Case" and created["price"] == 500
    assert created["image"] == sample_case["image"]
    assert_stats(created, sample_case)
    # 0.7*100 + 0.25*800 + 0.05*5000 = 520 → rtp 1.04
    assert created["expectedValue"] == pytest.approx(520.0) and created["rtp"] == pytest.approx(1.04)

    cases = await listed(live)
    assert cases == [created]
    item_keys = {"id", "name", "rarity", "price", "weight", "chance", "image"}
    assert set(cases[0]) == {"id", "name", "price", "image", "version", "items", "expectedValue", "rtp"}
    assert all(set(i) == item_keys for i in cases[0]["items"])
    assert len({i["id"] for i in cases[0]["items"]}) == 3


async def test_put_replaces_the_whole_case_and_each_version_stays_readable(live, sample_case):
    """PUT is a full replace; every edit bumps the version and archives it."""
    token = await live.admin_token()
    case_id = (await create(live, token, sample_case))["id"]

    second = {"name": "Starter Case v2", "price": 1000,
              "items": [{"name": "Only Item", "rarity": "epic", "price": 300, "weight": 3}]}
    reply = await live.api.call("PUT", f"/api/admin/cases/{case_id}", second, token=token)
    assert reply.status == 200 and reply.body["success"] is True, reply
    updated = reply.body["case"]
    assert updated["id"] == case_id and updated["version"] == 2
    assert updated["image"] is None  # replace, not patch: the old image is gone
    assert_stats(updated, second)
    assert updated["items"][0]["chance"] == 1.0 and updated["rtp"] == pytest.approx(0.3)

    third = copy.deepcopy(sample_case)
    third["items"][0]["weight"] = 170
    reply = await live.api.call("PUT", f"/api/admin/cases/{case_id}", third, token=token)
    assert reply.status == 200 and reply.body["case"]["version"] == 3
    assert_stats(reply.body["case"], third)
    assert await listed(live) == [reply.body["case"]]

    versions = {v["version"]: v for v in await live.db.case_versions.find({"caseId": case_id}).to_list(None)}
    assert sorted(versions) == [1, 2, 3]
    for version, body in ((1, sample_case), (2, second), (3, third)):
        doc = versions[version]
        assert doc["name"] == body["name"] and doc["price"] == body["price"]
        assert [(i["name"], i["weight"], i["price"]) for i in doc["items"]] == [
            (i["name"], i["weight"], i["price"]) for i in body["items"]]
    assert await live.db.cases.count_documents({}) == 1


async def test_delete_hides_the_case_but_keeps_it_and_its_versions(live, sample_case):
    """DELETE removes the case from /api/cases only; the document and versions stay."""
    token = await live.admin_token()
    keep = await create(live, token, {**sample_case, "name": "Keep"})
    gone = await create(live, token, sample_case)
    await live.api.call("PUT", f"/api/admin/cases/{gone['id']}", {**sample_case, "price": 700}, token=token)

    reply = await live.api.call("DELETE", f"/api/admin/cases/{gone['id']}", token=token)
    assert reply.status == 200 and reply.body == {"success": True}
    assert [c["id"] for c in await listed(live)] == [keep["id"]]

    doc = await live.db.cases.find_one({"_id": gone["id"]})
    assert doc is not None and doc["active"] is False and doc["price"] == 700
    assert await live.db.case_versions.count_documents({"caseId": gone["id"]}) == 2


async def test_put_and_delete_of_unknown_or_deleted_case_are_404(live, sample_case):
    """Nothing to edit → 404 with the envelope, and nothing is written."""
    token = await live.admin_token()
    case_id = (await create(live, token, sample_case))["id"]
    assert (await live.api.call("DELETE", f"/api/admin/cases/{case_id}", token=token)).status == 200
    before = await catalogue_state(live.db)

    for target in ("no-such-case", case_id):
        for method, body in (("PUT", sample_case), ("DELETE", None)):
            reply = await live.api.call(method, f"/api/admin/cases/{target}", body, token=token)
            assert reply.status == 404, (method, target, reply)
            assert reply.body == {"success": False, "error": "Case not found", "code": "case_not_found"}
    assert await catalogue_state(live.db) == before
    assert await listed(live) == []


# --- validation -----------------------------------------------------------------


def item(**changes) -> dict:
    return {"name": "Thing", "rarity": "common", "price": 10, "weight": 1, **changes}


def case(**changes) -> dict:
    return {"name": "Case", "price": 100, "items": [item()], **changes}


INVALID: list[tuple[str, dict, str]] = [
    ("empty name", case(name=""), "name"),
    ("blank name", case(name="   "), "name"),
    ("name too long", case(name="n" * 101), "name"),
    ("name missing", {"price": 100, "items": [item()]}, "name"),
    ("name not a string", case(name=5), "name"),
    ("price zero", case(price=0), "price"),
    ("price negative", case(price=-1), "price"),
    ("price as string", case(price="5"), "price"),
    ("price as float", case(price=5.5), "price"),
    ("price as bool", case(price=True), "price"),
    ("price missing", {"name": "Case", "items": [item()]}, "price"),
    ("no items", case(items=[]), "items"),
    ("items missing", {"name": "Case", "price": 100}, "items"),
    ("items not a list", case(items={"0": item()}), "items"),
    ("101 items", case(items=[item()] * 101), "items"),
    ("weight zero", case(items=[item(weight=0)]), "items.0.weight"),
    ("weight negative", case(items=[item(), item(weight=-3)]), "items.1.weight"),
    ("weight as float", case(items=[item(weight=1.5)]), "items.0.weight"),
    ("weight as a huge float", case(items=[item(weight=1e300)]), "items.0.weight"),
    ("weight as string", case(items=[item(weight="5")]), "items.0.weight"),
    ("weight as bool", case(items=[item(weight=True)]), "items.0.weight"),
    ("item price negative", case(items=[item(price=-1)]), "items.0.price"),
    ("item price as float", case(items=[item(price=9.99)]), "items.0.price"),
    ("item price as string", case(items=[item(price="10")]), "items.0.price"),
    ("item price as bool", case(items=[item(price=False)]), "items.0.price"),
    ("item name empty", case(items=[item(name="")]), "items.0.name"),
    ("item name too long", case(items=[item(name="x" * 101)]), "items.0.name"),
    ("item rarity missing", case(items=[{"name": "T", "price": 1, "weight": 1}]), "items.0.rarity"),
    ("item not an object", case(items=[5]), "items.0"),
    ("unknown case field", case(color="red"), "color"),
    ("unknown item field", case(items=[item(color="red")]), "items.0.color"),
    ("snake_case alias", {"name": "Case", "price": 100, "items": [item()], "expected_value": 1}, "expected_value"),
    ("id in body", case(id="abc"), "id"),
    ("image not a string", case(image=5), "image"),
]


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in INVALID], ids=[n for n, _, _ in INVALID])
async def test_invalid_case_is_400_naming_the_field_and_changes_nothing(live, sample_case, body, field):
    """Every rule on create and on replace → 400 `validation_error` with `details`."""
    token = await live.admin_token()
    existing = await create(live, token, sample_case)
    before = await catalogue_state(live.db)
    for method, path in (("POST", "/api/admin/cases"), ("PUT", f"/api/admin/cases/{existing['id']}")):
        reply = await live.api.call(method, path, body, token=token)
        assert reply.status == 400, (method, reply)
        assert reply.body["success"] is False and reply.body["code"] == "validation_error"
        assert isinstance(reply.body["error"], str) and field in reply.body["error"]
        assert field in [d["field"] for d in reply.body["details"]], reply.body["details"]
        assert all(isinstance(d["message"], str) and d["message"] for d in reply.body["details"])
    assert await catalogue_state(live.db) == before


async def test_limits_are_inclusive(live):
    """100-character names, 100 items, price 1, item price 0 and weight 1 are all allowed."""
    token = await live.admin_token()
    body = case(name="n" * 100, price=1, items=[item(name="i" * 100, price=0, weight=1)] * 100)
    created = await create(live, token, body)
    assert len(created["items"]) == 100 and created["expectedValue"] == 0 and created["rtp"] == 0
    assert created["items"][0]["chance"] == pytest.approx(0.01)


# --- cases:updated ---------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_every_successful_change_emits_cases_updated(live, sample_case, transports):
    """Create, replace and delete each reach every connected socket, anonymous or not."""
    token = await live.admin_token()
    user_token, _ = await live.api.register("watcher")
    sockets = [await connect_socket(live.base_url, transports=transports),
               await connect_socket(live.base_url, token=user_token, transports=transports)]
    try:
        case_id = (await create(live, token, sample_case))["id"]
        for _, rec in sockets:
            await rec.wait_for("cases:updated", 1)
        reply = await live.api.call("PUT", f"/api/admin/cases/{case_id}", sample_case, token=token)
        assert reply.status == 200
        for _, rec in sockets:
            await rec.wait_for("cases:updated", 2)
        reply = await live.api.call("DELETE", f"/api/admin/cases/{case_id}", token=token)
        assert reply.status == 200
        for _, rec in sockets:
            assert await rec.wait_for("cases:updated", 3) == [None, None, None]
            assert rec.names() == ["cases:updated"] * 3
    finally:
        await asyncio.gather(*(client.disconnect() for client, _ in sockets))


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_rejected_admin_requests_emit_nothing_and_change_nothing(live, sample_case, transports):
    """403, 401, 400 and 404 admin requests: no event, no write. A later good
    change is the barrier proving the bad ones emitted nothing before it."""
    admin = await live.admin_token()
    user_token, _ = await live.api.register("mallory")
    existing = await create(live, admin, sample_case)
    client, rec = await connect_socket(live.base_url, transports=transports)
    try:
        before = await catalogue_state(live.db)
        rejected = [
            ("POST", "/api/admin/cases", sample_case, user_token, 403),
            ("PUT", f"/api/admin/cases/{existing['id']}", sample_case, user_token, 403),
            ("DELETE", f"/api/admin/cases/{existing['id']}", None, user_token, 403),
            ("POST", "/api/admin/cases", sample_case, None, 401),
            ("DELETE", f"/api/admin/cases/{existing['id']}", None, "not-a-token", 401),
            ("POST", "/api/admin/cases", {**sample_case, "price": 0}, admin, 400),
            ("PUT", f"/api/admin/cases/{existing['id']}", {**sample_case, "items": []}, admin, 400),
            ("PUT", "/api/admin/cases/missing", sample_case, admin, 404),
            ("DELETE", "/api/admin/cases/missing", None, admin, 404),
        ]
        for method, path, body, token, status in rejected:
            reply = await live.api.call(method, path, body, token=token)
            assert reply.status == status, (method, path, reply)
            assert reply.body["success"] is False and isinstance(reply.body["code"], str)
        assert await catalogue_state(live.db) == before

        await create(live, admin, {**sample_case, "name": "Barrier"})
        await rec.wait_for("cases:updated")
        assert rec.names() == ["cases:updated"]
    finally:
        await client.disconnect()


async def test_concurrent_replaces_each_make_a_version(live, sample_case):
    """PUT carries no precondition, so racing replaces all succeed, one version each, all archived."""
    token = await live.admin_token()
    case_id = (await create(live, token, sample_case))["id"]
    client, rec = await connect_socket(live.base_url)
    try:
        bodies = [{**sample_case, "name": f"Edit {n}", "price": 100 + n} for n in range(5)]
        replies = await asyncio.gather(*(
            live.api.call("PUT", f"/api/admin/cases/{case_id}", body, token=token) for body in bodies))
        assert [r.status for r in replies] == [200] * 5, replies
        assert sorted(r.body["case"]["version"] for r in replies) == [2, 3, 4, 5, 6]
        await rec.wait_for("cases:updated", 5)

        versions = await live.db.case_versions.find({"caseId": case_id}).sort("version", 1).to_list(None)
        assert [v["version"] for v in versions] == [1, 2, 3, 4, 5, 6]
        for reply in replies:  # each reply describes exactly the version it created
            case = reply.body["case"]
            assert versions[case["version"] - 1]["name"] == case["name"]
            assert versions[case["version"] - 1]["price"] == case["price"]
        (current,) = await listed(live)
        assert current["version"] == 6 and current["name"] == versions[-1]["name"]
    finally:
        await client.disconnect()


async def test_cases_updated_arrives_only_after_the_write(live, sample_case):
    """Whoever refetches on `cases:updated` sees the change: the store is read in the event handler itself,
    which may run before the admin's HTTP reply has even arrived."""
    token = await live.admin_token()
    client, seen = socketio.AsyncClient(reconnection=False), asyncio.Queue()

    @client.on("cases:updated")
    async def on_update(*_):
        await seen.put([(c["version"], c["active"]) for c in await live.db.cases.find({}).to_list(None)])

    await client.connect(live.base_url, transports=["websocket"], wait_timeout=WAIT)
    try:
        create_task = asyncio.ensure_future(live.api.post("/api/admin/cases", sample_case, token=token))
        assert await asyncio.wait_for(seen.get(), WAIT) == [(1, True)]
        case_id = (await create_task).body["case"]["id"]
        put = asyncio.ensure_future(live.api.call("PUT", f"/api/admin/cases/{case_id}", sample_case, token=token))
        assert await asyncio.wait_for(seen.get(), WAIT) == [(2, True)]
        await put
        delete = asyncio.ensure_future(live.api.call("DELETE", f"/api/admin/cases/{case_id}", token=token))
        assert await asyncio.wait_for(seen.get(), WAIT) == [(2, False)]
        await delete
    finally:
        await client.disconnect()


async def test_catalogue_changes_made_by_another_process_show_at_once(start_live, sample_case):
    """GET /api/cases is served from a per-process cache; a change made through
    another server on the same database invalidates it through the stamp."""
    reader = await start_live()
    writer = await start_live()
    assert (await reader.api.get("/api/cases")).body["cases"] == []  # cached: empty
    admin = await writer.admin_token()
    created = await writer.api.post("/api/admin/cases", sample_case, token=admin)
    case_id = created.body["case"]["id"]
    assert [c["id"] for c in (await reader.api.get("/api/cases")).body["cases"]] == [case_id]
    renamed = {**sample_case, "name": "Renamed"}
    await writer.api.call("PUT", f"/api/admin/cases/{case_id}", renamed, token=admin)
    assert (await reader.api.get("/api/cases")).body["cases"][0]["name"] == "Renamed"
    await writer.api.call("DELETE", f"/api/admin/cases/{case_id}", token=admin)
    assert (await reader.api.get("/api/cases")).body["cases"] == []


async def test_an_unchanged_catalogue_is_served_without_reading_the_stamp_on_the_embedded_store(
        start_live, sample_case):
    """On MongoDB every GET /api/cases reads the stamp (another process may have
    bumped it). On the embedded store only this process's servers can write, and
    the `meta` collection's change version tells whether any of them did: no
    store call while nothing changed, the stamp read again once another server
    bumped it (tests/test_embedded_store.py checks the version itself)."""
    reader, writer = await start_live(), await start_live()
    assert (await reader.api.get("/api/cases")).status == 200  # built and cached
    reader.chaos.arm()
    for _ in range(3):
        assert (await reader.api.get("/api/cases")).status == 200
    unchanged = list(reader.chaos.calls)
    reader.chaos.disarm()
    embedded = not os.environ.get("MONGODB_URI")
    assert unchanged == ([] if embedded else [("meta", "find_one")] * 3)
    created = await writer.api.post("/api/admin/cases", sample_case, token=await writer.admin_token())
    reader.chaos.arm()
    listed = await reader.api.get("/api/cases")
    changed = list(reader.chaos.calls)
    reader.chaos.disarm()
    assert [c["id"] for c in listed.body["cases"]] == [created.body["case"]["id"]]
    assert changed[0] == ("meta", "find_one") and ("cases", "to_list") in changed, changed
