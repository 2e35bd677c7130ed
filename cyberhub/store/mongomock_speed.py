"""Cheaper versions of four helpers mongomock calls on every store call.

A profile of openings on the embedded store (bench/README.md, issue 18 item 4)
spent about a quarter of the server's time in them: `copy.deepcopy` of a whole
document before each update and `copy.copy` of every value of each document
read, mongomock's recursive datetime normalisation of every document, filter
and update, and `packaging.version.parse` of a constant on every insert.

Each replacement returns what the original returns, for every input
(tests/test_mongomock_speed.py compares them on random documents); they only
take a shorter path for the plain values documents are made of:

- `copy(x)` / `deepcopy(x)`: str, int, float, bool, None, bytes and datetimes
  are immutable and returned as they are (copy.copy does the same for all but
  datetime, of which it makes an equal one); plain dicts and lists are copied
  here, with copy.deepcopy's memo so shared and cyclic parts stay so; anything
  else goes to the copy module.
- `patch_datetime_awareness_in_document(x)`: the same walk with the same types
  out, plain values and containers recognised by their exact type first.
- `version.parse(s)`: memoised (a Version is immutable).

They are installed into mongomock's modules (`collection.copy`,
`collection.version`, `helpers.patch_datetime_awareness_in_document`) once, by
store.embedded; relies on mongomock 4.3.0 calling them through those names.
"""

from __future__ import annotations

import copy as _copy_module
import functools
import types
from datetime import datetime
from typing import Any

_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, datetime})


def fast_copy(x: Any) -> Any:
    if type(x) in _IMMUTABLE:
        return x
    return _copy_module.copy(x)


def fast_deepcopy(x: Any, memo: dict | None = None) -> Any:
    kind = type(x)
    if kind in _IMMUTABLE:
        return x
    if memo is None:
        memo = {}
    if kind is dict:
        found = memo.get(id(x))
        if found is not None:
            return found
        y: Any = {}
        memo[id(x)] = y
        _keep_alive(x, memo)
        for key, value in x.items():
            y[key if type(key) is str else fast_deepcopy(key, memo)] = (
                value if type(value) in _IMMUTABLE else fast_deepcopy(value, memo))
        return y
    if kind is list:
        found = memo.get(id(x))
        if found is not None:
            return found
        y = []
        memo[id(x)] = y
        _keep_alive(x, memo)
        append = y.append
        for value in x:
            append(value if type(value) in _IMMUTABLE else fast_deepcopy(value, memo))
        return y
    return _copy_module.deepcopy(x, memo)


def _keep_alive(x: Any, memo: dict) -> None:
    """As copy.deepcopy does: the originals stay referenced while the memo lives,
    so no id in it can be reused by another object during the copy."""
    try:
        memo[id(memo)].append(x)
    except KeyError:
        memo[id(memo)] = [x]


def fast_patch_datetimes(original: Any) -> Any:
    """mongomock.helpers.patch_datetime_awareness_in_document, with the plain
    cases first; `original` handles everything else (and recurses through
    the module's name, i.e. back into this one)."""

    def patch(value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return value
        if kind is dict:
            return {k: patch(v) for k, v in value.items()}
        if kind is list:
            return [patch(v) for v in value]
        return original(value)

    patch.original = original  # type: ignore[attr-defined]
    return patch


def install() -> None:
    """Put the replacements into mongomock's modules (idempotent)."""
    from mongomock import collection, helpers
    from packaging import version

    if getattr(collection, "_cyberhub_speed", False):
        return
    collection.copy = types.SimpleNamespace(copy=fast_copy, deepcopy=fast_deepcopy)
    collection.version = types.SimpleNamespace(parse=functools.lru_cache(maxsize=64)(version.parse))
    helpers.patch_datetime_awareness_in_document = fast_patch_datetimes(helpers.patch_datetime_awareness_in_document)
    collection._cyberhub_speed = True
