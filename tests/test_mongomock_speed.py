"""The embedded store's cheaper mongomock helpers (cyberhub/store/mongomock_speed.py)
return what the originals return, for random documents of every value type."""

from __future__ import annotations

import copy
import random
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bson import ObjectId
from packaging import version

from cyberhub.store import db as dbmod
from cyberhub.store import mongomock_speed

T0 = datetime(2026, 12, 6, 12, 0, 0, 123456)


def _leaf(rng: random.Random) -> Any:
    return rng.choice([
        "text", "", 0, -7, 2**70, 1.5, float("inf"), True, False, None, b"\x00bytes",
        T0, T0.replace(tzinfo=UTC), T0.replace(tzinfo=timezone(timedelta(hours=3))), ObjectId(),
    ])


def _tree(rng: random.Random, depth: int = 0, shared: list | None = None) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return _leaf(rng)
    if shared and roll < 0.45:
        return rng.choice(shared)  # the same object in two places
    if roll < 0.7:
        kind = dict if rng.random() < 0.8 else OrderedDict
        node: Any = kind((f"k{i}", _tree(rng, depth + 1, shared)) for i in range(rng.randint(0, 4)))
    elif roll < 0.95:
        node = [_tree(rng, depth + 1, shared) for _ in range(rng.randint(0, 4))]
    else:
        node = tuple(_tree(rng, depth + 1, shared) for _ in range(rng.randint(0, 3)))
    if shared is not None and isinstance(node, dict | list):
        shared.append(node)
    return node


def _shape(value: Any, seen: dict | None = None) -> Any:
    """Types and values all the way down, and which containers are the same object."""
    seen = {} if seen is None else seen
    if isinstance(value, dict | list | tuple):
        if id(value) in seen:
            return ("same as", seen[id(value)])
        seen[id(value)] = len(seen)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return (type(value).__name__, [(k, _shape(v, seen)) for k, v in items])
    return (type(value).__name__, value.isoformat() if isinstance(value, datetime) else value)


@pytest.mark.parametrize("seed", range(6))
def test_deepcopy_and_copy_give_what_the_copy_module_gives(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        tree = _tree(rng, shared=[])
        fast, slow = mongomock_speed.fast_deepcopy(tree), copy.deepcopy(tree)
        assert _shape(fast) == _shape(slow)
        assert fast == tree or tree != tree  # (nan-free trees compare equal)
        if isinstance(tree, dict | list):
            assert fast is not tree
            shallow = mongomock_speed.fast_copy(tree)
            assert _shape(shallow) == _shape(copy.copy(tree)) and shallow is not tree
            # A deep copy shares no container with the original.
            inner = [v for v in (tree.values() if isinstance(tree, dict) else tree) if isinstance(v, dict | list)]
            copied = [v for v in (fast.values() if isinstance(fast, dict) else fast) if isinstance(v, dict | list)]
            assert all(a is not b for a, b in zip(inner, copied, strict=True))
    cyclic: dict = {"a": [1, 2]}
    cyclic["self"] = cyclic
    cyclic["again"] = cyclic["a"]
    copied = mongomock_speed.fast_deepcopy(cyclic)
    assert copied["self"] is copied and copied["again"] is copied["a"] and copied["a"] is not cyclic["a"]


@pytest.mark.parametrize("seed", range(4))
def test_datetime_normalisation_gives_what_mongomock_gives(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from mongomock import helpers

    rng = random.Random(seed)
    original = getattr(helpers.patch_datetime_awareness_in_document, "original",
                       helpers.patch_datetime_awareness_in_document)
    # mongomock's own, recursing into itself (not into an installed replacement).
    monkeypatch.setattr(helpers, "patch_datetime_awareness_in_document", original)
    fast = mongomock_speed.fast_patch_datetimes(original)
    for _ in range(300):
        tree = _tree(rng)
        assert _shape(fast(tree)) == _shape(original(tree))


def test_version_parse_is_remembered_and_installed_once() -> None:
    from mongomock import collection, helpers

    dbmod.connect(None, "installed")  # the embedded store installs the replacements
    assert collection.copy.deepcopy is mongomock_speed.fast_deepcopy
    assert collection.copy.copy is mongomock_speed.fast_copy
    assert collection.version.parse("3.6") == version.parse("3.6")
    assert collection.version.parse("4.0") is collection.version.parse("4.0")
    assert collection.version.parse("4.0") <= helpers.PYMONGO_VERSION
    patched = helpers.patch_datetime_awareness_in_document
    mongomock_speed.install()
    assert helpers.patch_datetime_awareness_in_document is patched  # not wrapped twice
