"""The embedded store without whole-collection scans.

mongomock matches every filter against every document of a collection, even a
filter on `_id`, so on the embedded store every call used to cost in proportion
to everything ever stored. What follows gives the embedded collections indexes:
the candidates for a filter are narrowed by the indexes, and mongomock's own
matcher (`filter_applies`) still decides on each candidate, in mongomock's
order, so no query means anything else (tests/test_embedded_store.py runs the
same operations on plain mongomock and compares every result).

It relies on these mongomock internals, checked against mongomock 4.3.0 with
mongomock-motor 0.0.36 (tests/test_embedded_store.py fails if they change):
  1. `mongomock.MongoClient(_store=...)` takes the object that holds all data;
     `ServerStore` → `DatabaseStore` → `CollectionStore`, which keeps a
     collection's documents in the OrderedDict `_documents` (keyed by `_id`)
     and only changes it in `__setitem__` / `__delitem__` / `drop`, and calls
     `_remove_expired_documents` (TTL indexes) before every read.
  2. Every find, find_one, update, replace, delete, count and unique-index
     check of a `Collection` goes through `Collection._iter_documents(filter)`,
     which yields, in `_documents` order, the stored documents `filter_applies`
     accepts (an empty collection still validates the filter against `{}`).
  3. `Collection._update` changes the matched stored document in place (no
     `__setitem__`), so indexes are refreshed after each `_update` call.
  4. mongomock-motor's collection wrapper calls the sync collection's methods
     by name, and patches `_iter_documents` on the instance (as this does).
  5. (store/mongomock_speed.py) mongomock.collection calls `copy.copy`,
     `copy.deepcopy` and `version.parse` through its module names `copy` and
     `version`, and everything calls `helpers.patch_datetime_awareness_in_document`
     through the helpers module.
  6. A `Cursor` keeps `_spec`, `_sort` (list of (key, direction)), `_skip`,
     `_limit`, `_projection`, `_factory`, and builds its results in
     `_compute_results` from `Collection._get_dataset` (sort, then
     `_copy_only_fields` of every match) before applying skip and limit.
Collections handed out by `embedded_database(...)` are patched; sync
collections reached around it (`db.delegate`) are not, and must not be used
to update documents.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from datetime import datetime
from typing import Any

from cyberhub.store import mongomock_speed, simple_filters

EQUALITY_FIELDS = ("userId", "usernameLower", "state", "status", "caseId", "paymentId", "opId")
RANGE_FIELDS = ("createdAt",)
_ABSENT = object()  # the field is missing: an equality or range filter never matches
_ODD = object()  # a value of another type: always a candidate, filter_applies decides
_RANGE_OPS = frozenset(("$gt", "$gte", "$lt", "$lte"))
# Change versions of every embedded collection come from one counter, so a
# version is never repeated, even by a collection dropped and made again.
_CHANGE_VERSIONS = itertools.count(1)


def _index_keys(doc: dict) -> tuple:
    """(the EQUALITY_FIELDS keys..., the RANGE_FIELDS keys...) of a document."""
    keys = []
    for f in EQUALITY_FIELDS:
        v = doc.get(f, _ABSENT)
        keys.append(v if v is _ABSENT or type(v) is str else _ODD)
    for f in RANGE_FIELDS:
        v = doc.get(f, _ABSENT)
        keys.append(v if v is _ABSENT or (type(v) is datetime and v.tzinfo is None) else _ODD)
    return tuple(keys)


def _string_in(value: Any) -> bool:
    """`{"$in": [str, ...]}` and nothing else."""
    return (type(value) is dict and value.keys() == {"$in"} and type(value["$in"]) is list
            and all(type(v) is str for v in value["$in"]))


def _naive_datetime(value: Any) -> bool:
    return type(value) is datetime and value.tzinfo is None


def _indexed_collection_store() -> type:
    from mongomock.store import CollectionStore, _get_min_datetime_from_value

    class IndexedCollectionStore(CollectionStore):
        """A CollectionStore that also indexes `_id` (its dict), the top-level
        string values of EQUALITY_FIELDS, the naive datetimes of RANGE_FIELDS, and
        the expiry times of its TTL indexes."""

        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.full_scans = 0  # reads of every document (tests check request paths make none)
            # Changes on each write: equal versions mean nothing in the collection changed
            # in between, whichever server sharing this store wrote (see `change_version`).
            self.version = 0
            self.listed = 0  # candidates taken from the indexes, all reads together
            self._reset_indexes()

        def _reset_indexes(self) -> None:
            self._next_seq = 0
            self._seqs: dict[Any, int] = {}  # key → position in `_documents` order
            self._keys: dict[Any, tuple] = {}  # key → (eq keys..., range keys...) as indexed
            self._eq: dict[str, dict[str, dict[Any, int]]] = {f: {} for f in EQUALITY_FIELDS}
            self._eq_odd: dict[str, dict[Any, int]] = {f: {} for f in EQUALITY_FIELDS}
            self._unsorted: set[tuple[str, str]] = set()
            self._range: dict[str, list[tuple[datetime, int, Any]]] = {f: [] for f in RANGE_FIELDS}
            self._range_odd: dict[str, dict[Any, int]] = {f: {} for f in RANGE_FIELDS}
            self._ttl_heaps: dict[str, list[tuple[datetime, int, Any]]] = {}
            self._ttl_odd: dict[str, dict[Any, int]] = {}
            self._ttl_seen: dict[str, dict[Any, Any]] = {}

        # -- keeping the indexes ------------------------------------------------
        def __setitem__(self, key: Any, val: Any) -> None:
            self.version = next(_CHANGE_VERSIONS)
            new = key not in self._documents
            super().__setitem__(key, val)
            if new:
                self._seqs[key] = self._next_seq
                self._next_seq += 1
            self.reindex(key)

        def __delitem__(self, key: Any) -> None:
            self.version = next(_CHANGE_VERSIONS)
            super().__delitem__(key)
            self._unindex(key)

        def drop(self) -> None:
            self.version = next(_CHANGE_VERSIONS)
            super().drop()
            self._reset_indexes()

        def create_index(self, index_name: str, index_dict: dict) -> None:
            super().create_index(index_name, index_dict)
            self._ttl_heaps.pop(index_name, None)  # (re)built on next use

        def drop_index(self, index_name: str) -> None:
            super().drop_index(index_name)
            for state in (self._ttl_heaps, self._ttl_odd, self._ttl_seen):
                state.pop(index_name, None)

        def reindex(self, key: Any) -> None:
            """Bring the indexes up to date with the stored document `key` (after any
            change to it, in place ones included: so this counts as a change)."""
            self.version = next(_CHANGE_VERSIONS)
            doc = self._documents[key]
            seq = self._seqs[key]
            new = _index_keys(doc)
            old = self._keys.get(key)
            if old != new:
                for i, field in enumerate(EQUALITY_FIELDS):
                    if old is None or old[i] != new[i]:
                        if old is not None:
                            self._eq_remove(field, old[i], key)
                        self._eq_add(field, new[i], key, seq)
                base = len(EQUALITY_FIELDS)
                for i, field in enumerate(RANGE_FIELDS):
                    if old is None or old[base + i] != new[base + i]:
                        if old is not None:
                            self._range_remove(field, old[base + i], key, seq)
                        self._range_add(field, new[base + i], key, seq)
                self._keys[key] = new
            for name, index in self._ttl_indexes.items():
                if name in self._ttl_heaps:
                    self._ttl_track(name, index, key, doc, seq)

        def _unindex(self, key: Any) -> None:
            old = self._keys.pop(key, None)
            seq = self._seqs.pop(key)
            if old is not None:
                for i, field in enumerate(EQUALITY_FIELDS):
                    self._eq_remove(field, old[i], key)
                for i, field in enumerate(RANGE_FIELDS):
                    self._range_remove(field, old[len(EQUALITY_FIELDS) + i], key, seq)
            for name in self._ttl_heaps:
                self._ttl_odd[name].pop(key, None)
                self._ttl_seen[name].pop(key, None)  # heap entries go stale; skipped when popped

        def _eq_add(self, field: str, value: Any, key: Any, seq: int) -> None:
            if value is _ABSENT:
                return
            if value is _ODD:
                self._eq_odd[field][key] = seq
                return
            bucket = self._eq[field].setdefault(value, {})
            if bucket and seq < next(reversed(bucket.values())):
                self._unsorted.add((field, value))
            bucket[key] = seq

        def _eq_remove(self, field: str, value: Any, key: Any) -> None:
            if value is _ABSENT:
                return
            if value is _ODD:
                del self._eq_odd[field][key]
                return
            bucket = self._eq[field][value]
            del bucket[key]
            if not bucket:
                del self._eq[field][value]
                self._unsorted.discard((field, value))

        def _range_add(self, field: str, value: Any, key: Any, seq: int) -> None:
            if value is _ABSENT:
                return
            if value is _ODD:
                self._range_odd[field][key] = seq
                return
            bisect.insort(self._range[field], (value, seq, key), key=lambda e: (e[0], e[1]))

        def _range_remove(self, field: str, value: Any, key: Any, seq: int) -> None:
            if value is _ABSENT:
                return
            if value is _ODD:
                del self._range_odd[field][key]
                return
            entries = self._range[field]
            at = bisect.bisect_left(entries, (value, seq), key=lambda e: (e[0], e[1]))
            del entries[at]

        # -- TTL indexes: a heap of expiry times instead of a scan per read ----------
        def _ttl_track(self, name: str, index: dict, key: Any, doc: dict, seq: int) -> None:
            field = next(iter(index["key"]))[0]
            earliest = _get_min_datetime_from_value(doc.get(field))
            seen = self._ttl_seen[name]
            if key in seen and type(seen[key]) is type(earliest) and seen[key] == earliest:
                return
            seen[key] = earliest
            if _naive_datetime(earliest):
                self._ttl_odd[name].pop(key, None)
                heap = self._ttl_heaps[name]
                heapq.heappush(heap, (earliest, seq, key))
                if len(heap) > 2 * len(self._documents) + 64:  # drop stale entries
                    self._ttl_build(name, index)
            else:
                self._ttl_odd[name][key] = seq

        def _ttl_build(self, name: str, index: dict) -> None:
            self._ttl_heaps[name], self._ttl_odd[name], self._ttl_seen[name] = [], {}, {}
            for key, doc in self._documents.items():
                self._ttl_track(name, index, key, doc, self._seqs[key])

        def _remove_expired_documents(self) -> None:
            if not self._ttl_indexes:
                return
            now_ = mongomock_utcnow()
            for name, index in list(self._ttl_indexes.items()):
                # Same rules as CollectionStore._expire_documents.
                try:
                    expiry = int(index["expireAfterSeconds"])
                except ValueError:
                    continue
                if len(index["key"]) > 1:
                    continue
                if name not in self._ttl_heaps:
                    self._ttl_build(name, index)
                field = next(iter(index["key"]))[0]
                heap, expired = self._ttl_heaps[name], []
                while heap and self._value_meets_expiry(heap[0][0], expiry, now_):
                    earliest, seq, key = heapq.heappop(heap)
                    doc = self._documents.get(key)
                    if doc is not None and self._seqs[key] == seq and self._ttl_seen[name].get(key) == earliest \
                            and self._value_meets_expiry(doc.get(field), expiry, now_):
                        expired.append(key)
                for key in list(self._ttl_odd[name]):
                    if self._value_meets_expiry(self._documents[key].get(field), expiry, now_):
                        expired.append(key)
                for key in expired:
                    if key in self._documents:
                        del self[key]

        # -- reads -------------------------------------------------------------------
        @property
        def documents(self) -> Any:
            self.full_scans += 1
            return super().documents

        def candidates(self, flt: Any) -> tuple[list, bool] | None:
            """The stored documents that can match `flt`, in `_documents` order (a
            superset of the matches), and whether all of them certainly match (a
            one-field filter answered by an index holding only equal strings); None
            when no index applies."""
            if not isinstance(flt, dict) or not flt:
                return None
            self._remove_expired_documents()
            single = len(flt) == 1
            best: tuple | None = None  # (how many candidates, field, value, kind); only the best is listed
            for field, value in flt.items():
                if field == "_id" and type(value) is str:
                    doc = self._documents.get(value)
                    return ([] if doc is None else [doc]), single
                if field == "_id" and _string_in(value):  # a few ids (an upgrade's stake)
                    found = sorted((self._seqs[k], k) for k in set(value["$in"]) if k in self._documents)
                    self.listed += len(found)
                    return [self._documents[k] for _, k in found], False
                if field in self._eq and type(value) is str:
                    size = len(self._eq[field].get(value, ())) + len(self._eq_odd[field])
                    kind = "eq"
                elif field in self._range and isinstance(value, dict) and value and value.keys() <= _RANGE_OPS \
                        and all(_naive_datetime(v) for v in value.values()):
                    lo, hi = self._range_bounds(field, value)
                    size = max(0, hi - lo) + len(self._range_odd[field])
                    kind = "range"
                else:
                    continue
                if best is None or size < best[0]:
                    best = (size, field, value, kind)
            if best is None:
                return None
            _, field, value, kind = best
            if kind == "eq":
                keys = self._eq_candidates(field, value)
                exact = single and not self._eq_odd[field]
            else:
                keys, exact = self._range_candidates(field, value), False
            self.listed += len(keys)
            docs = self._documents
            return [docs[k] for k in keys], exact

        def _eq_candidates(self, field: str, value: str) -> list:
            bucket = self._eq[field].get(value, {})
            if (field, value) in self._unsorted:
                ordered = dict(sorted(bucket.items(), key=lambda kv: kv[1]))
                self._eq[field][value] = bucket = ordered
                self._unsorted.discard((field, value))
            odd = self._eq_odd[field]
            if not odd:
                return list(bucket)
            return [k for k, _ in sorted([*bucket.items(), *odd.items()], key=lambda kv: kv[1])]

        def _range_bounds(self, field: str, ops: dict) -> tuple[int, int]:
            entries = self._range[field]
            lo, hi = 0, len(entries)
            for op, bound in ops.items():  # a superset: filter_applies checks the exact bounds
                if op in ("$gt", "$gte"):
                    lo = max(lo, bisect.bisect_left(entries, bound, key=lambda e: e[0]))
                else:
                    hi = min(hi, bisect.bisect_right(entries, bound, key=lambda e: e[0]))
            return lo, hi

        def _range_candidates(self, field: str, ops: dict) -> list:
            entries = self._range[field]
            lo, hi = self._range_bounds(field, ops)
            found = [(seq, key) for _, seq, key in entries[lo:hi]] + [
                (seq, key) for key, seq in self._range_odd[field].items()]
            found.sort(key=lambda e: e[0])
            return [key for _, key in found]

    return IndexedCollectionStore


def mongomock_utcnow() -> datetime:
    import mongomock

    return mongomock.utcnow()


def embedded_client() -> Any:
    """An AsyncMongoMockClient whose collections keep indexes (see above)."""
    import mongomock

    mongomock_speed.install()  # cheaper copies and datetime normalisation (see there)
    from mongomock.store import DatabaseStore, ServerStore
    from mongomock_motor import AsyncMongoMockClient

    collection_store = _indexed_collection_store()

    class IndexedDatabaseStore(DatabaseStore):
        def __getitem__(self, col_name: str) -> Any:
            try:
                return self._collections[col_name]
            except KeyError:
                col = self._collections[col_name] = collection_store(col_name)
                return col

        def rename(self, name: str, new_name: str) -> None:
            self._collections.setdefault(name, collection_store(name))
            super().rename(name, new_name)

    class IndexedServerStore(ServerStore):
        def __getitem__(self, db_name: str) -> Any:
            try:
                return self._databases[db_name]
            except KeyError:
                db = self._databases[db_name] = IndexedDatabaseStore()
                return db

    return AsyncMongoMockClient(mock_mongo_client=mongomock.MongoClient(_store=IndexedServerStore()))


def _speed_up(collection: Any) -> Any:
    """Patch one sync mongomock collection (instance attributes, as mongomock-motor
    does) to read through the indexes of its IndexedCollectionStore."""
    if getattr(collection, "_cyberhub_indexed", False):
        return collection
    from mongomock.collection import Cursor
    from mongomock.filtering import filter_applies
    from mongomock.helpers import (
        hashdict,
        make_datetime_timezone_aware_in_document,
        patch_datetime_awareness_in_document,
    )

    scan = collection._iter_documents

    def _applies(flt: Any, doc: dict) -> bool:
        """filter_applies, answered directly for the plain filters of the money paths."""
        answer = simple_filters.matches(flt, doc) if doc else None
        return filter_applies(flt, doc) if answer is None else answer
    update = collection._update
    count_documents = collection.count_documents
    recording: list[list] = []

    def _refresh(touched: list) -> None:
        """Re-index documents an update changed in place (still stored as is)."""
        store = collection._store
        for doc in touched:
            key = doc.get("_id")
            if isinstance(key, dict):
                key = hashdict(key)
            if store._documents.get(key) is doc:
                store.reindex(key)

    def _iter_documents(flt: Any) -> Any:
        store = collection._store
        for touched in recording:  # e.g. the unique-index check of a document just changed
            _refresh(touched)
        plan = store.candidates(flt) if hasattr(store, "candidates") else None
        if plan is None:
            found = scan(flt)
        else:
            if store.is_empty:
                filter_applies(flt, {})  # validate the filter, as mongomock does
            docs, exact = plan
            if not docs and not exact:
                filter_applies(flt, {})  # validate the filter, as a scan would have
            found = iter(docs) if exact else (doc for doc in docs if _applies(flt, doc))
        if recording:
            return _recorded(found, recording[-1])
        return found

    def _recorded(found: Any, into: list) -> Any:
        for doc in found:
            into.append(doc)
            yield doc

    def _update(*args: Any, **kwargs: Any) -> Any:
        touched: list = []
        recording.append(touched)
        try:
            return update(*args, **kwargs)
        finally:
            recording.pop()
            _refresh(touched)

    find_one = collection.find_one

    def _find_one(filter: Any = None, projection: Any = None, *args: Any, sort: Any = None,
                  **kwargs: Any) -> Any:
        """`find_one` of a filter naming a string `_id` (the commonest call: every
        read and every find-and-modify by id) without building a cursor: the same
        document mongomock's `find` → `_get_dataset` would give."""
        if (not args and not kwargs and not sort and type(filter) is dict and type(filter.get("_id")) is str
                and hasattr(collection._store, "candidates")):
            store = collection._store
            store._remove_expired_documents()
            doc = store._documents.get(filter["_id"])
            # (Checked against {} when nothing matches: an invalid filter still raises.)
            if len(filter) > 1 and not _applies(patch_datetime_awareness_in_document(filter),
                                                {} if doc is None else doc):
                return None
            if doc is None:
                return None
            found = collection._copy_only_fields(doc, projection, dict)
            if collection.codec_options.tz_aware:
                found = make_datetime_timezone_aware_in_document(found)
            return found
        if sort is not None:
            kwargs["sort"] = sort
        return find_one(filter, projection, *args, **kwargs)

    def _count_documents(filter: Any, **kwargs: Any) -> int:
        if isinstance(filter, dict) and not filter and not kwargs:
            return len(collection._store)  # every document matches {}
        return count_documents(filter, **kwargs)

    collection._iter_documents = _iter_documents
    # Read by store.db.change_version (a Motor collection has no such attribute).
    collection._cyberhub_change_version = lambda: collection._store.version
    collection._update = _update
    collection.count_documents = _count_documents
    collection.find_one = _find_one
    find = collection.find

    def _find(*args: Any, **kwargs: Any) -> Any:
        cursor = find(*args, **kwargs)
        if type(cursor) is Cursor:
            cursor.__class__ = _limited_cursor()
        return cursor

    collection.find = _find
    collection._cyberhub_indexed = True
    return collection


_LIMITED_CURSOR: Any = None


def _plainly_ordered(docs: list[dict], key: str) -> bool:
    """Every document has top-level `key` holding a str, an int or a naive
    datetime, all of one type: then mongomock's sort key (`resolve_sort_key`,
    `bson_compare` of one type → `op(a, b)`) orders them as Python does."""
    if "." in key or not docs:
        return False
    first = docs[0].get(key, _ABSENT)
    kind = type(first)
    if kind not in (str, int, datetime):
        return False
    for doc in docs:
        value = doc.get(key, _ABSENT)
        if type(value) is not kind or (kind is datetime and value.tzinfo is not None):
            return False
    return True


def _limited_cursor() -> type:
    """A mongomock Cursor that, for a sorted query with a limit, copies only the
    documents it returns: mongomock copies every match before applying `limit`,
    so a page of a player's inventory cost as much as all of the player's items.
    The sort is mongomock's own (`Collection._get_dataset`, 4.3.0), on the
    uncopied matches; the first `skip + limit` are then copied as it would."""
    global _LIMITED_CURSOR
    if _LIMITED_CURSOR is not None:
        return _LIMITED_CURSOR
    from mongomock import filtering
    from mongomock.collection import Cursor
    from mongomock.helpers import make_datetime_timezone_aware_in_document

    class LimitedCursor(Cursor):
        def _compute_results(self, with_limit_and_skip: bool = False) -> Any:
            sort = self._sort
            if not (with_limit_and_skip and self._limit and self._limit > 0 and sort and isinstance(sort, list)
                    and all(type(e) is tuple and len(e) == 2 and type(e[0]) is str and not e[0].startswith("$")
                            for e in sort)):
                return super()._compute_results(with_limit_and_skip)
            key = (self._factory, self._skip, self._limit)
            cached = getattr(self, "_cyberhub_page", None)
            if cached is not None and cached[0] == key:
                return cached[1]
            collection = self.collection
            dataset = list(collection._iter_documents(self._spec))
            for sort_key, direction in reversed(sort):  # as Collection._get_dataset sorts
                if _plainly_ordered(dataset, sort_key):
                    # Same exact type everywhere: mongomock's BSON order is Python's order.
                    dataset = sorted(dataset, key=lambda x, k=sort_key: x[k], reverse=direction < 0)
                else:
                    dataset = sorted(dataset, key=lambda x, k=sort_key: filtering.resolve_sort_key(k, x),
                                     reverse=direction < 0)
            page = [collection._copy_only_fields(doc, self._projection, dict)
                    for doc in dataset[self._skip:self._skip + self._limit]]
            if collection.codec_options.tz_aware:
                page = [make_datetime_timezone_aware_in_document(doc) for doc in page]
            self._cyberhub_page = (key, page)
            return page

    _LIMITED_CURSOR = LimitedCursor
    return LimitedCursor


def embedded_database(client: Any, db_name: str) -> Any:
    """The embedded database: mongomock-motor's, with indexed collections, each
    wrapped once (mongomock-motor builds a new wrapper on every attribute access)."""
    from mongomock_motor import AsyncMongoMockCollection, AsyncMongoMockDatabase

    class EmbeddedDatabase(AsyncMongoMockDatabase):
        def get_collection(self, name: str, *args: Any, **kwargs: Any) -> Any:
            cache = self.__dict__.setdefault("_cyberhub_collections", {})
            if not args and not kwargs and name in cache:
                return cache[name]
            sync = _speed_up(self.delegate.get_collection(name, *args, **kwargs))
            collection = AsyncMongoMockCollection(self, sync)
            if not args and not kwargs:
                cache[name] = collection
            return collection

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_") or name in dir(self.delegate):
                return super().__getattr__(name)
            collection = self.get_collection(name)
            self.__dict__[name] = collection  # later `db.<name>` is a plain attribute read
            return collection

    sync_db = client.get_database(db_name).delegate
    return EmbeddedDatabase(client, sync_db)
