"""Every class of bad input gets its status and the README's error envelope,
never a traceback, and leaves the database exactly as it was."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.client import Reply

MIB = 1024 * 1024
NO_LEAK = ("Traceback", 'File "', "Error(", "site-packages", "pymongo", "pydantic_core")


async def db_snapshot(db) -> dict:
    """Every document of every collection, for a before/after comparison."""
    names = sorted(await db.list_collection_names())
    return {name: await db[name].find({}).sort("_id", 1).to_list(None) for name in names}


def assert_envelope(reply: Reply, status: int, code: str | None = None) -> None:
    """The error shape (README.md, "REST API"): success false, a human `error` string, a machine `code`."""
    assert reply.status == status, reply
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers
    body = reply.body
    assert isinstance(body, dict), reply
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str) and body["code"]
    assert set(body) <= {"success", "error", "code", "details"}, body
    if code is not None:
        assert body["code"] == code, body
    text = json.dumps(body)
    assert not any(marker in text for marker in NO_LEAK), text


@dataclass
class World:
    """A live server with an admin, a user and one case."""

    live: Any
    tokens: dict[str, str]
    case_id: str

    @property
    def api(self) -> Any:
        return self.live.api

    @property
    def chaos(self) -> Any:
        return self.live.chaos


@pytest.fixture
async def world(live, sample_case) -> AsyncIterator[World]:
    """The world every test refuses requests in; afterwards its database must be unchanged."""
    admin = await live.admin_token()
    user, _ = await live.api.register("plain_user")
    created = await live.api.post("/api/admin/cases", sample_case, token=admin)
    assert created.status == 201
    before = await db_snapshot(live.db)
    yield World(live, {"admin": admin, "user": user}, created.body["case"]["id"])
    assert await db_snapshot(live.db) == before, "a refused request changed the database"


async def chunked(target: Any, path: str, chunks: list[bytes], token: str | None = None) -> Reply:
    """POST `chunks` with Transfer-Encoding: chunked (no Content-Length)."""
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    api = target.api
    async with api.session.post(api.base_url + path, data=body(), headers=headers) as resp:
        assert "Content-Length" not in resp.request_info.headers
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        return Reply(resp.status, json.loads(await resp.text()), resp.headers)


# --- routing ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/api"), ("GET", "/api/nope"), ("POST", "/api/nope"), ("DELETE", "/api/cases/x/y"),
    ("GET", "/api/admin/cases/x/extra"), ("PUT", "/health/"),
])
async def test_unknown_route_is_404(world, method, path):
    """Any path no route matches → 404 `route_not_found`, body or not."""
    reply = await world.api.call(method, path, {"some": "body"} if method != "GET" else None)
    assert_envelope(reply, 404, "route_not_found")


@pytest.mark.parametrize(("method", "path", "role"), [
    ("POST", "/health", None), ("DELETE", "/health", None), ("PUT", "/api/cases", None),
    ("POST", "/api/cases", None), ("GET", "/api/auth/login", None), ("DELETE", "/api/auth/register", None),
    ("GET", "/api/payment/callback", None), ("PATCH", "/api/cases", None), ("BREW", "/api/cases", None),
    ("GET", "/api/cases/open", "user"), ("PUT", "/api/profile", "user"),
    ("DELETE", "/api/admin/cases", "admin"), ("PATCH", "/api/admin/cases/{case}", "admin"),
    ("POST", "/api/admin/cases/{case}", "admin"),
])
async def test_wrong_method_is_405(world, method, path, role):
    """A known route with a method it does not serve → 405 `method_not_allowed`."""
    token = world.tokens[role] if role else None
    reply = await world.api.call(method, path.format(case=world.case_id), {"name": "x"}, token=token)
    assert_envelope(reply, 405, "method_not_allowed")
    allowed = reply.headers["Allow"].split(", ")
    assert method not in allowed and "OPTIONS" in allowed and len(allowed) >= 2


async def test_405_allow_header_lists_what_the_route_serves(world):
    """The Allow header a 405 carries names exactly the route's methods."""
    expected = {"/health": "GET, OPTIONS", "/api/cases": "GET, OPTIONS", "/api/auth/login": "POST, OPTIONS",
                f"/api/admin/cases/{world.case_id}": "PUT, DELETE, OPTIONS"}
    for path, allow in expected.items():
        reply = await world.api.call("PATCH", path, token=world.tokens["admin"])
        assert reply.status == 405 and reply.headers["Allow"] == allow, (path, reply.headers.get("Allow"))


# --- bodies -------------------------------------------------------------------------

MALFORMED = {
    "truncated": b'{"username": "abc", ',
    "empty body": b"",
    "single quotes": b"{'username': 'abc'}",
    "trailing comma": b'{"username": "abc_def", "password": "long enough",}',
    "not utf-8": b'{"username": "\xff\xfe", "password": "long enough"}',
    "NaN": b'{"username": "abc_def", "password": "long enough", "x": NaN}',
    "Infinity": b'{"username": "abc_def", "password": Infinity}',
    "-Infinity": b'{"username": "abc_def", "password": -Infinity}',
    "deeply nested": b"[" * 100_000,
    "two documents": b'{"username": "abc_def"} {"password": "long enough"}',
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_json_is_400_invalid_json(world, raw):
    """Bodies that are not JSON (NaN/Infinity included) → 400 `invalid_json`, on public and admin routes."""
    assert_envelope(await world.api.post("/api/auth/register", raw=raw), 400, "invalid_json")
    reply = await world.api.post("/api/admin/cases", raw=raw, token=world.tokens["admin"])
    assert_envelope(reply, 400, "invalid_json")


@pytest.mark.parametrize("raw", [b"[]", b'["username"]', b'"text"', b"5", b"null", b"true"])
async def test_json_that_is_not_an_object_is_400(world, raw):
    """Valid JSON that is not an object → 400 with the envelope."""
    assert_envelope(await world.api.post("/api/auth/register", raw=raw), 400, "invalid_json")
    reply = await world.api.call("PUT", f"/api/admin/cases/{world.case_id}", raw=raw, token=world.tokens["admin"])
    assert_envelope(reply, 400, "invalid_json")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/auth/register", {"username": "ab", "password": "long enough"}, "username"),
    ("/api/auth/register", {"username": "abc_def", "password": "short"}, "password"),
    ("/api/auth/register", {"username": "abc_def"}, "password"),
    ("/api/auth/register", {"username": 123, "password": "long enough"}, "username"),
    ("/api/auth/login", {"username": "abc_def", "password": ["long enough"]}, "password"),
    ("/api/auth/register", {"username": "abc_def", "password": "long enough", "role": "admin"}, "role"),
    ("/api/auth/register", {"username": "abc_def", "password": "long enough", "isAdmin": True}, "isAdmin"),
    ("/api/auth/login", {"username": "abc_def", "password": "long enough", "extra": None}, "extra"),
    ("/api/auth/register", {"Username": "abc_def", "password": "long enough"}, "Username"),
])
async def test_validation_errors_and_unknown_fields_are_400_naming_the_field(world, path, body, field):
    """Invalid or unknown fields → 400 `validation_error`, `details` say which field and why."""
    reply = await world.api.post(path, body)
    assert_envelope(reply, 400, "validation_error")
    assert field in [d["field"] for d in reply.body["details"]], reply.body
    assert all(isinstance(d["message"], str) and d["message"] for d in reply.body["details"])


# --- size -------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid registration body of exactly `size` bytes (JSON whitespace padding)."""
    head = b'{"username": "big_body", "password": "long enough"'
    return head + b" " * (size - len(head) - 1) + b"}"


async def test_body_over_1_mib_with_content_length_is_413(world):
    """Content-Length over 1 MiB → 413 `payload_too_large`, public, admin and webhook routes alike."""
    raw = padded(MIB + 1)
    assert_envelope(await world.api.post("/api/auth/register", raw=raw), 413, "payload_too_large")
    reply = await world.api.post("/api/admin/cases", raw=raw, token=world.tokens["admin"])
    assert_envelope(reply, 413, "payload_too_large")
    assert_envelope(await world.api.post("/api/payment/callback", raw=b"x" * (2 * MIB)), 413, "payload_too_large")


async def test_chunked_body_over_1_mib_is_413(world):
    """Without Content-Length, the streamed size counts: over 1 MiB in chunks → 413."""
    raw = padded(MIB + 1)
    chunks = [raw[i:i + 64 * 1024] for i in range(0, len(raw), 64 * 1024)]
    assert_envelope(await chunked(world, "/api/auth/register", chunks), 413, "payload_too_large")
    reply = await chunked(world, "/api/admin/cases", chunks, token=world.tokens["admin"])
    assert_envelope(reply, 413, "payload_too_large")


async def test_body_over_1_mib_is_413_where_no_body_is_read_and_before_auth(world):
    """DELETE and GET never read a body, yet an oversized one is refused and nothing is deleted;
    size is checked before the token, so a missing token with a huge body is also 413."""
    big = b"x" * (2 * MIB)
    reply = await world.api.call("DELETE", f"/api/admin/cases/{world.case_id}", raw=big,
                                 token=world.tokens["admin"])
    assert_envelope(reply, 413, "payload_too_large")
    assert_envelope(await world.api.call("GET", "/api/cases", raw=big), 413, "payload_too_large")
    assert_envelope(await world.api.post("/api/admin/cases", raw=big), 413, "payload_too_large")
    assert_envelope(await world.api.post("/api/no/such/route", raw=big), 413, "payload_too_large")
    chunks = [big[i:i + 256 * 1024] for i in range(0, len(big), 256 * 1024)]
    assert_envelope(await chunked(world, "/api/admin/cases", chunks), 413, "payload_too_large")


async def test_body_of_exactly_1_mib_is_accepted(live):
    """The limit is inclusive: a 1 MiB body is read and handled, sent whole or chunked."""
    reply = await live.api.post("/api/auth/register", raw=padded(MIB))
    assert reply.status == 201, reply
    raw = padded(MIB).replace(b"big_body", b"big_bod2")
    reply = await chunked(live, "/api/auth/register", [raw[:MIB // 2], raw[MIB // 2:]])
    assert reply.status == 201, reply


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("authorization", "code"), [
    (None, "missing_token"),
    ("Bearer not-a-jwt", "invalid_token"),
    ("Bearer ", "invalid_token"),
    ("Token abc", "invalid_token"),
])
async def test_bad_or_missing_token_is_401(world, sample_case, authorization, code):
    """401 on user and admin routes, also when a body is still being sent (the client must get the answer)."""
    headers = {"Authorization": authorization} if authorization else {}
    assert_envelope(await world.api.get("/api/profile", headers=headers), 401, code)
    reply = await world.api.post("/api/admin/cases", sample_case, headers=headers)
    assert_envelope(reply, 401, code)
    big = {**sample_case, "image": "x" * 2000, "items": sample_case["items"] * 33}
    reply = await world.api.post("/api/admin/cases", raw=json.dumps(big).encode() * 8, headers=headers)
    assert_envelope(reply, 401, code)


async def test_wrong_role_is_403(world, sample_case):
    """A user token on every admin route → 403 `admin_required`, whatever the body."""
    token = world.tokens["user"]
    for method, path, body in (
        ("POST", "/api/admin/cases", sample_case),
        ("PUT", f"/api/admin/cases/{world.case_id}", sample_case),
        ("DELETE", f"/api/admin/cases/{world.case_id}", None),
        ("POST", "/api/admin/cases", {"not": "valid"}),
    ):
        assert_envelope(await world.api.call(method, path, body, token=token), 403, "admin_required")
    reply = await world.api.post("/api/admin/cases", raw=padded(MIB // 2), token=token)
    assert_envelope(reply, 403, "admin_required")


async def test_database_down_is_503_without_details(world, sample_case):
    """An unreachable store is a 503 envelope, not a stack trace; nothing was written."""
    world.chaos.down = True
    try:
        reply = await world.api.post("/api/auth/register", {"username": "while_down", "password": "long enough"})
        assert_envelope(reply, 503, "database_unavailable")
        assert_envelope(await world.api.get("/api/cases"), 503, "database_unavailable")
        assert_envelope(await world.api.post("/api/admin/cases", sample_case, token=world.tokens["admin"]),
                        503, "database_unavailable")
    finally:
        world.chaos.down = False
