"""mongomock's matcher's answer for the plain filters the money paths use,
without its general machinery.

The wallet's guarded update (docs/MONEY.md, step 2) filters the user on
`appliedOps: {$ne: opId}` — a list of up to 500 ids, which mongomock's matcher
compared one element at a time through three Python calls each: at 500 ids,
more than the rest of an opening's store work together — plus `balance:
{$gte: price}` and `fair.nonce: n`. `matches(filter, doc)` answers such
filters directly, with mongomock 4.3.0's semantics, and says None (ask
`filter_applies`) for anything else. Handled, for every key of the filter:

- `key: s` with s a str or an int (not bool), on a dotted path through plain
  dicts, whose value is a str or an int: equal (absent: no match);
- `key: {"$ne": s}` with s a str, on a top-level field: a list or tuple
  matches when no element equals s, an absent field matches, a str or int
  value when it is not s;
- `key: {"$gt"|"$gte"|"$lt"|"$lte": n}` with n an int, on a top-level int
  field: the comparison (absent: no match).

tests/test_embedded_store.py runs such filters on plain mongomock and on the
embedded store and compares every answer.
"""

from __future__ import annotations

import operator
from typing import Any

_ABSENT = object()
_COMPARE = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def _plain(value: Any) -> bool:
    kind = type(value)
    return kind is str or kind is int


def _value(doc: dict, key: str) -> Any:
    """The value at a dotted path through plain dicts; _ABSENT if missing;
    None (unanswerable here) if the path goes through anything else."""
    if "." not in key:
        return doc.get(key, _ABSENT)
    parts = key.split(".")
    if "" in parts:
        return None  # mongomock reads an empty part as "the document itself"
    value: Any = doc
    for part in parts:
        if type(value) is not dict:
            return None
        value = value.get(part, _ABSENT)
        if value is _ABSENT:
            return _ABSENT
    return value


def _one(key: str, search: Any, doc: dict) -> bool | None:
    if not key or key[0] == "$":
        return None
    if _plain(search):
        value = _value(doc, key)
        if value is _ABSENT:
            return False
        return value == search if _plain(value) else None
    if type(search) is not dict or len(search) != 1 or "." in key:
        return None
    ((op, operand),) = search.items()
    value = doc.get(key, _ABSENT)
    if op == "$ne" and type(operand) is str:
        if value is _ABSENT:
            return True
        if type(value) is list or type(value) is tuple:
            return operand not in value
        return value != operand if _plain(value) else None
    compare = _COMPARE.get(op)
    if compare is not None and type(operand) is int:
        if value is _ABSENT:
            return False
        return compare(value, operand) if type(value) is int else None
    return None


def matches(flt: dict, doc: dict) -> bool | None:
    """Whether `doc` matches `flt` as mongomock's filter_applies says, or None
    when the filter (or the document) is not one of the plain shapes above."""
    answer = True
    for key, search in flt.items():
        one = _one(key, search, doc)
        if one is None:
            return None
        answer = answer and one
    return answer
