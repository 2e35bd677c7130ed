"""The embedded store's indexes (cyberhub/store/db.py) never change what a query means.

A differential test runs the same random operations — inserts, updates that
move documents between index buckets or give indexed fields values of other
types, upserts, replaces, deletes, find-and-modify, TTL expiry — against plain
mongomock (through mongomock-motor) and against the indexed embedded store, and
compares every result and the full contents. Another test checks that the
request-path query kinds never read a whole collection, which is what fails if
a mongomock upgrade stops routing queries through the internals db.py relies on.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from mongomock_motor import AsyncMongoMockClient
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import PyMongoError

from cyberhub.store import db as dbmod

T0 = datetime(2026, 1, 1, 12, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(mongomock, "utcnow", c)  # both stores read TTL time from here
    return c


def _stores() -> tuple[Any, Any]:
    plain = AsyncMongoMockClient()["diff"]
    fast = dbmod.connect(None, "diff").db
    return plain, fast


def _sync_store(db: Any, name: str) -> Any:
    return db.delegate.get_collection(name)._store


async def _indexes(db: Any) -> None:
    await db.things.create_indexes([IndexModel([("usernameLower", ASCENDING)], unique=True, sparse=True)])
    await db.keys.create_indexes([IndexModel([("createdAt", ASCENDING)], expireAfterSeconds=600)])


class Draw:
    """Random values, including ones of the 'wrong' type for every indexed field."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def id(self) -> Any:
        return self.rng.choice([*(f"id{i}" for i in range(40)), 7, 8])

    def user(self) -> Any:
        return self.rng.choice(["u1", "u2", "u3", "u4", 5, None, ["u1", "u2"], {"x": "u1"}])

    def state(self) -> Any:
        return self.rng.choice(["pending", "done", "running", 1, ["done"]])

    def when(self) -> Any:
        minutes = self.rng.randint(-30, 30)
        return self.rng.choice([
            T0 + timedelta(minutes=minutes), T0 + timedelta(minutes=minutes),
            (T0 + timedelta(minutes=minutes)).replace(tzinfo=UTC), "yesterday", None,
            [T0 + timedelta(minutes=minutes), T0 - timedelta(minutes=minutes)],
        ])

    def doc(self) -> dict:
        doc: dict[str, Any] = {"_id": self.id(), "n": self.rng.randint(0, 9)}
        for field, value in (("userId", self.user), ("state", self.state), ("createdAt", self.when),
                             ("status", lambda: self.rng.choice(["owned", "sold"])),
                             ("usernameLower", lambda: self.rng.choice([f"name{self.rng.randint(0, 30)}", None]))):
            if self.rng.random() < 0.85:
                doc[field] = value()
        # The wallet's shapes (a list of operation ids, the seed pair), sometimes of another type.
        if self.rng.random() < 0.7:
            doc["ops"] = self.rng.choice([[self.op() for _ in range(self.rng.randint(0, 6))], self.op(), 3, None])
        if self.rng.random() < 0.5:
            doc["m"] = self.rng.choice([self.rng.randint(0, 3), "2", [1, 2], True])
        if self.rng.random() < 0.7:
            doc["fair"] = self.rng.choice([{"nonce": self.rng.randint(0, 3), "hash": self.rng.choice("ab")},
                                           {"hash": "a"}, "a", [{"nonce": 1}]])
        return doc

    def op(self) -> str:
        return self.rng.choice(["op1", "op2", "op3", "op4"])

    def guard(self) -> dict:
        """The wallet's guarded update filter, in pieces (simple_filters answers these)."""
        r = self.rng
        pieces = [("ops", lambda: {"$ne": self.op()}), ("n", lambda: {r.choice(["$gte", "$gt", "$lt", "$lte"]):
                                                                        r.randint(0, 9)}),
                  ("fair.nonce", lambda: r.randint(0, 3)), ("fair.hash", lambda: r.choice("ab")),
                  ("state", self.state), ("userId", lambda: r.choice(["u1", "u2", 5])),
                  ("n", lambda: r.choice([r.randint(0, 9), True])), ("fair.", lambda: "a"),
                  ("ops", lambda: {"$ne": r.choice([3, None])}), ("m", lambda: {"$gte": r.randint(0, 3)}),
                  ("m", lambda: r.randint(0, 3))]
        return {key: value() for key, value in (r.choice(pieces) for _ in range(r.randint(1, 4)))}

    def filter(self, *, upsert: bool = False) -> dict:
        """A filter; with `upsert`, none of the `_id: {$in: ...}` ones (plain mongomock would
        store the `$in` document itself as the `_id`, then fail to expire it)."""
        r = self.rng
        by_ids = [
            lambda: {"_id": {"$in": [self.id() for _ in range(r.randint(0, 4))]}},
            lambda: {"_id": {"$in": [self.id(), self.id()]}, "userId": self.user(), "status": "owned"},
        ]
        kinds = [
            lambda: {"_id": self.id(), **self.guard()},
            lambda: {"_id": self.id(), **self.guard()},
            lambda: self.guard(),
            lambda: {"_id": self.id()},
            lambda: {"_id": self.id(), "state": self.state()},
            lambda: {"userId": self.user()},
            lambda: {"userId": self.user(), "status": r.choice(["owned", "sold"])},
            lambda: {"state": self.state(), "createdAt": {"$lte": self.when()}},
            lambda: {"createdAt": {"$gte": T0 + timedelta(minutes=r.randint(-40, 40))}},
            lambda: {"createdAt": {"$gt": T0 - timedelta(minutes=r.randint(0, 40)),
                                   "$lt": T0 + timedelta(minutes=r.randint(0, 40))}},
            lambda: {"createdAt": {"$gte": (T0 + timedelta(minutes=r.randint(-40, 40))).replace(tzinfo=UTC)}},
            lambda: {"$or": [{"userId": self.user()}, {"state": self.state()}]},
            lambda: {"userId": {"$in": ["u1", "u3"]}},
            lambda: {"usernameLower": f"name{r.randint(0, 30)}"},
            lambda: {"n": {"$gte": r.randint(0, 9)}},
            lambda: {},
            lambda: {"_id": self.id(), "$bogus": 1},  # invalid: both must raise the same
            lambda: {"userId": self.user(), "n": {"$bad": 1}},
        ]
        return r.choice(kinds if upsert else kinds + by_ids)()

    def update(self) -> dict:
        r = self.rng
        field, value = r.choice([("userId", self.user), ("state", self.state), ("createdAt", self.when),
                                 ("status", lambda: r.choice(["owned", "sold"])), ("n", lambda: r.randint(0, 9))])
        if r.random() < 0.15:
            return {"$unset": {field: ""}}
        if r.random() < 0.2:  # the wallet's move
            return {"$inc": {"n": -1, "fair.nonce": 1}, "$push": {"ops": {"$each": [self.op()], "$slice": -5}}}
        return {"$set": {field: value()}, "$inc": {"n": 1}}


def _plain(value: Any) -> Any:
    """Generated ObjectIds differ between the two stores; everything else must not."""
    if isinstance(value, ObjectId):
        return "<generated id>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def _outcome(call: Any) -> Any:
    try:
        return ("ok", await call)
    except (PyMongoError, TypeError, ValueError) as exc:  # mongomock fails on some updates (a $push to None)
        return ("error", type(exc).__name__)


def _result(value: Any) -> Any:
    for attr in ("matched_count", "deleted_count", "inserted_id"):
        if hasattr(value, attr):
            return {a: getattr(value, a) for a in ("matched_count", "modified_count", "upserted_id",
                                                   "deleted_count", "inserted_id") if hasattr(value, a)}
    return value


async def _step(db: Any, op: str, args: tuple, kwargs: dict) -> Any:
    coll = db[args[0]]
    if op == "find":
        flt, sort, limit, skip = args[1:]
        cursor = coll.find(flt)
        if sort:
            cursor = cursor.sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        if skip:
            cursor = cursor.skip(skip)
        return _plain(await _outcome(cursor.to_list(None)))
    kind, value = await _outcome(getattr(coll, op)(*args[1:], **kwargs))
    return kind, _plain(_result(value))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_same_results_as_plain_mongomock(clock: Clock, seed: int) -> None:
    rng = random.Random(seed)
    draw = Draw(rng)
    plain, fast = _stores()
    for db in (plain, fast):
        await _indexes(db)
    for step in range(1500):
        name = rng.choice(["things", "keys"])
        roll = rng.random()
        if roll < 0.3:
            op, args, kwargs = "insert_one", (name, draw.doc()), {}
        elif roll < 0.45:
            upsert = rng.random() < 0.2
            op, args, kwargs = rng.choice(["update_one", "update_many"]), (
                name, draw.filter(upsert=upsert), draw.update()), {"upsert": upsert}
        elif roll < 0.5:
            replacement = {k: v for k, v in draw.doc().items() if k != "_id"}
            upsert = rng.random() < 0.3
            op, args, kwargs = "replace_one", (name, draw.filter(upsert=upsert), replacement), {"upsert": upsert}
        elif roll < 0.56:
            op, args, kwargs = rng.choice(["delete_one", "delete_many"]), (name, draw.filter()), {}
        elif roll < 0.64:
            upsert = rng.random() < 0.2
            op, args, kwargs = "find_one_and_update", (name, draw.filter(upsert=upsert), draw.update()), {
                "return_document": rng.choice([ReturnDocument.AFTER, ReturnDocument.BEFORE]), "upsert": upsert}
        elif roll < 0.66:
            op, args, kwargs = "find_one_and_delete", (name, draw.filter()), {}
        elif roll < 0.74:
            op, args, kwargs = "count_documents", (name, draw.filter()), {}
        elif roll < 0.76:
            op, args, kwargs = "estimated_document_count", (name,), {}
        elif roll < 0.84:
            projection = rng.choice([None, {"userId": 1}, {"n": 0, "state": 0}])
            op, args, kwargs = "find_one", (name, draw.filter()), ({"projection": projection} if projection else {})
        else:
            sort = rng.choice([None, [("createdAt", DESCENDING), ("_id", DESCENDING)], [("n", ASCENDING)],
                               [("status", ASCENDING), ("_id", DESCENDING)], [("n", DESCENDING), ("_id", ASCENDING)]])
            op, args, kwargs = "find", (name, draw.filter(), sort, rng.choice([0, 1, 3]), rng.choice([0, 0, 2])), {}
        if rng.random() < 0.05:
            clock.now += timedelta(minutes=rng.randint(1, 10))  # TTL expiry on "keys"
        # Deep copies: an insert fills in the _id of the dict it is given.
        expected = await _step(plain, op, *_copy(args, kwargs))
        got = await _step(fast, op, *_copy(args, kwargs))
        assert got == expected, (step, op, args, kwargs)
        if step % 100 == 99:
            for coll in ("things", "keys"):
                everything = [_plain(await db[coll].find({}).to_list(None)) for db in (fast, plain)]
                assert everything[0] == everything[1]


def _copy(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    import copy

    return copy.deepcopy(args), dict(kwargs)


async def test_request_path_queries_read_no_whole_collection(clock: Clock) -> None:
    """Every query kind a request makes is answered from the indexes; a mongomock
    upgrade that reads documents some other way fails here (full_scans grows)."""
    db = dbmod.connect(None, "paths").db
    await dbmod.ensure_indexes(db, idempotency_ttl_seconds=3600)
    for i in range(300):
        user = f"user{i % 30}"
        await db.users.insert_one({"_id": f"user{i}", "usernameLower": f"name{i}", "balance": 10, "appliedOps": []})
        await db.inventory.insert_one({"_id": f"item{i}", "userId": user, "status": "owned", "wonAt": T0, "price": 1})
        await db.operations.insert_one({"_id": f"op{i}", "userId": user, "state": "done", "createdAt": T0})
        await db.ledger.insert_one({"_id": f"op{i}", "userId": user, "delta": 1, "createdAt": T0})
        await db.openings.insert_one({"_id": f"op{i}", "userId": user, "createdAt": T0 + timedelta(seconds=i)})
        await db.idempotency_keys.insert_one({"_id": f"{user}:k{i}", "userId": user, "state": "done",
                                              "opId": f"op{i}", "createdAt": T0})
        await db.case_versions.insert_one({"_id": f"case{i}:1", "caseId": f"case{i}", "version": 1})
    stores = {name: _sync_store(db, name) for name in ("users", "inventory", "operations", "ledger", "openings",
                                                       "idempotency_keys", "case_versions")}
    before = {name: s.full_scans for name, s in stores.items()}

    await db.users.insert_one({"_id": "new", "usernameLower": "new_name", "balance": 0})  # unique index check
    assert await db.users.find_one({"_id": "user3"}, projection={"passwordHash": 0})
    assert await db.users.find_one({"usernameLower": "name3"})
    assert await db.users.find_one_and_update(
        {"_id": "user3", "appliedOps": {"$ne": "x"}, "balance": {"$gte": 5}},
        {"$inc": {"balance": -5}, "$push": {"appliedOps": {"$each": ["x"], "$slice": -500}}},
        return_document=ReturnDocument.AFTER)
    await db.operations.insert_one({"_id": "op-new", "userId": "user1", "state": "pending", "createdAt": T0})
    assert (await db.operations.update_one({"_id": "op-new", "state": "pending"}, {"$set": {"x": 1}})).matched_count
    await db.operations.update_one({"_id": "op-new"}, {"$set": {"state": "done"}, "$setOnInsert": {"k": 1}},
                                   upsert=True)
    await db.operations.delete_one({"_id": "op5", "state": "pending"})
    assert await db.operations.find({"state": "pending", "createdAt": {"$lte": T0}}).sort("createdAt", 1).to_list(
        None) == []
    page = await db.inventory.find({"userId": "user1"}).sort([("wonAt", -1), ("_id", -1)]).limit(5).to_list(None)
    assert len(page) == 5
    cursor = {"$or": [{"wonAt": {"$lt": T0}}, {"wonAt": T0, "_id": {"$lt": page[-1]["_id"]}}]}
    assert await db.inventory.find({"userId": "user1", **cursor}).sort([("wonAt", -1)]).limit(5).to_list(None)
    assert await db.inventory.find_one({"_id": "item1", "userId": "user1"})
    assert len(await db.inventory.find({"_id": {"$in": ["item2", "item3", "nope"]}, "userId": "user2"}).to_list(
        None)) <= 2  # an upgrade's stake: looked up by id, never a scan
    await db.inventory.update_one({"_id": "item1", "status": "owned"}, {"$set": {"status": "sold"}})
    assert await db.inventory.count_documents({"userId": "user1", "status": "owned"}) == 9
    assert await db.inventory.count_documents({"status": "sold"}) == 1
    assert await db.openings.estimated_document_count() == 300
    assert await db.users.estimated_document_count() == 301
    recent = await db.openings.find({"createdAt": {"$gte": T0 + timedelta(seconds=280)}}).sort(
        [("createdAt", -1), ("_id", -1)]).limit(20).to_list(None)
    assert [d["_id"] for d in recent] == [f"op{i}" for i in range(299, 279, -1)]
    assert await db.ledger.find_one({"_id": "op7"}, projection={"balanceAfter": 1})
    await db.ledger.insert_one({"_id": "op-new", "userId": "user1", "delta": -1, "createdAt": T0})
    with pytest.raises(dbmod.DuplicateKeyError):
        await db.ledger.insert_one({"_id": "op-new", "userId": "user1", "delta": -1, "createdAt": T0})
    await db.idempotency_keys.insert_one({"_id": "user1:fresh", "userId": "user1", "state": "running",
                                          "opId": "o", "createdAt": T0})
    assert await db.idempotency_keys.find_one({"_id": "user1:fresh"})
    await db.idempotency_keys.update_one({"_id": "user1:fresh"}, {"$set": {"state": "done"}}, upsert=True)
    await db.idempotency_keys.delete_one({"_id": "user1:gone"})
    assert await db.idempotency_keys.find({"state": "running", "createdAt": {"$lte": T0}}).to_list(None) == []
    await db.case_versions.replace_one({"_id": "case1:2"}, {"caseId": "case1", "version": 2}, upsert=True)

    assert {name: s.full_scans for name, s in stores.items()} == before


async def test_ttl_expiry_without_scans(clock: Clock) -> None:
    db = dbmod.connect(None, "ttl").db
    await db.keys.create_indexes([IndexModel([("createdAt", ASCENDING)], expireAfterSeconds=60)])
    for i in range(50):
        await db.keys.insert_one({"_id": f"k{i}", "createdAt": T0 + timedelta(seconds=i)})
    store = _sync_store(db, "keys")
    scans = store.full_scans
    clock.now = T0 + timedelta(seconds=70)  # k0..k10 are 60 s old or more
    assert await db.keys.find_one({"_id": "k10"}) is None
    assert await db.keys.find_one({"_id": "k11"}) is not None
    await db.keys.update_one({"_id": "k11"}, {"$set": {"createdAt": T0 + timedelta(seconds=100)}})
    clock.now = T0 + timedelta(seconds=75)
    assert await db.keys.find_one({"_id": "k11"}) is not None  # its new time counts, not the old one
    assert await db.keys.count_documents({}) == 50 - 11 - 4
    assert store.full_scans == scans


async def test_embedded_collections_are_wrapped_once() -> None:
    db = dbmod.connect(None, "wrap").db
    assert db.users is db.users and db["users"] is db.users
    assert db.name == "wrap"  # database attributes are still the database's
    await db.users.insert_one({"_id": "a"})
    assert await db.list_collection_names() == ["users"]


async def test_the_smallest_index_is_the_one_listed(clock: Clock) -> None:
    """A filter on a user and a common status lists the user's documents only,
    not every document with that status."""
    db = dbmod.connect(None, "smallest").db
    for i in range(3000):
        await db.inventory.insert_one({"_id": f"item{i}", "userId": f"user{i % 300}", "status": "owned",
                                       "createdAt": T0 + timedelta(seconds=i)})
    store = _sync_store(db, "inventory")
    listed = store.listed
    assert await db.inventory.count_documents({"status": "owned", "userId": "user7"}) == 10
    assert store.listed - listed == 10
    recent = {"createdAt": {"$gte": T0 + timedelta(seconds=2990)}, "status": "owned"}
    assert len(await db.inventory.find(recent).to_list(None)) == 10
    assert store.listed - listed == 20


async def test_a_sorted_page_copies_only_the_page(clock: Clock) -> None:
    db = dbmod.connect(None, "page").db
    for i in range(200):
        await db.inventory.insert_one({"_id": f"item{i:03d}", "userId": "heavy", "wonAt": T0 + timedelta(seconds=i)})
    sync = db.delegate.get_collection("inventory")
    copied = []
    real_copy = sync._copy_only_fields
    sync._copy_only_fields = lambda doc, *args: copied.append(doc["_id"]) or real_copy(doc, *args)
    page = await db.inventory.find({"userId": "heavy"}).sort([("wonAt", -1), ("_id", -1)]).limit(21).to_list(None)
    assert [d["_id"] for d in page] == [f"item{i:03d}" for i in range(199, 178, -1)]
    assert len(copied) == 21


@pytest.mark.parametrize("seed", [4, 5])
async def test_change_version_moves_with_every_change(clock: Clock, seed: int) -> None:
    """`change_version` (what lets GET /api/cases skip reading the catalogue
    stamp): unchanged ⇒ no document of the collection changed, whatever the
    write — in place updates, upserts, replaces, deletes, TTL expiry, drop —
    and reads that change nothing leave it alone."""
    rng = random.Random(seed)
    draw = Draw(rng)
    db = dbmod.connect(None, "versions").db
    await _indexes(db)
    versions = {name: dbmod.change_version(db[name]) for name in ("things", "keys")}
    assert all(versions.values())
    writes = 0
    for step in range(800):
        name = rng.choice(["things", "keys"])
        roll = rng.random()
        if roll < 0.25:
            op, args, kwargs = "insert_one", (name, draw.doc()), {}
        elif roll < 0.4:
            upsert = rng.random() < 0.2
            op, args, kwargs = rng.choice(["update_one", "update_many"]), (
                name, draw.filter(upsert=upsert), draw.update()), {"upsert": upsert}
        elif roll < 0.45:
            replacement = {k: v for k, v in draw.doc().items() if k != "_id"}
            op, args, kwargs = "replace_one", (name, draw.filter(), replacement), {"upsert": rng.random() < 0.3}
        elif roll < 0.5:
            op, args, kwargs = rng.choice(["delete_one", "delete_many"]), (name, draw.filter()), {}
        elif roll < 0.6:
            op, args, kwargs = "find_one_and_update", (name, draw.filter(), draw.update()), {}
        elif roll < 0.62:
            op, args, kwargs = "find_one_and_delete", (name, draw.filter()), {}
        elif roll < 0.9:
            op, args, kwargs = "find_one", (name, draw.filter()), {}
        else:
            op, args, kwargs = "find", (name, draw.filter(), None, 0, 0), {}
        if rng.random() < 0.05:
            clock.now += timedelta(minutes=rng.randint(1, 10))  # TTL expiry on "keys"
        before = {}
        for n, v in versions.items():
            contents = _plain(await db[n].find({}).to_list(None))  # expires what is due first
            before[n] = (v(), contents)
        await _step(db, op, *_copy(args, kwargs))
        for n, v in versions.items():
            version, contents = before[n]
            if v() == version:
                assert _plain(await db[n].find({}).to_list(None)) == contents, (step, op, args)
            else:
                writes += 1
                # Reads never move it (on "keys", one may expire documents: a change).
                assert n == "keys" or op not in ("find_one", "find"), (step, op, args)
    assert writes > 100
    dropped = versions["things"]()
    await db.things.drop()
    assert versions["things"]() != dropped
