"""Socket.IO rooms and handshake authentication through real clients: a socket
joins only its own user's room, by handshake or by `user:identify`."""

from __future__ import annotations

import time

import jwt
import pytest
import socketio

from tests.conftest import JWT_SECRET
from tests.support.client import WAIT, Recorder, connect_socket

TRANSPORTS = [["websocket"], ["polling"]]


async def refusal(base_url: str, auth: dict, transports: list[str]) -> object:
    """Connects with `auth`, expecting a refusal; returns the server's `connect_error` data.

    python-socketio's client raises ConnectionError("One or more namespaces failed
    to connect: /"); the server's own text arrives in the `connect_error` event."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[object] = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(base_url, auth=auth, transports=transports, wait_timeout=WAIT)
    assert not client.connected
    assert len(errors) == 1, errors
    return errors[0]


async def assert_gets_only_own_balance_event(live, rec: Recorder, own: dict, other: dict) -> None:
    """Credit `other`, then `own`: once own's event arrives on this socket, other's
    (emitted first) would have too — so its absence is proven, not hoped for."""
    assert (await live.api.pay(other["id"], 300)).status == 200
    assert (await live.api.pay(own["id"], 100)).status == 200
    await rec.wait_for(f"balance:updated:{own['id']}")
    assert rec.names() == [f"balance:updated:{own['id']}"]


async def barrier(live, *recorders) -> None:
    """A public event every socket receives; once it arrives, anything emitted before it has too."""
    token = await live.admin_token()
    reply = await live.api.post("/api/admin/cases", {
        "name": "Barrier", "price": 1, "items": [{"name": "x", "rarity": "common", "price": 0, "weight": 1}],
    }, token=token)
    assert reply.status == 201, reply
    for rec in recorders:
        await rec.wait_for("cases:updated")


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_handshake_token_joins_own_room(live, transports):
    """A socket with a valid token gets `balance:updated:<id>` for its own user."""
    token, user = await live.api.register("alice")
    client, rec = await connect_socket(live.base_url, token=token, transports=transports)
    try:
        reply = await live.api.pay(user["id"], 250)
        assert reply.status == 200 and reply.body == {"success": True, "duplicate": False}, reply
        assert await rec.wait_for(f"balance:updated:{user['id']}") == [{"balance": 250}]
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_bad_or_expired_token_is_refused_with_a_clear_message(live, transports):
    """The server refuses the handshake and says why; the socket never counts as connected."""
    _, user = await live.api.register("bob")
    now = int(time.time())
    expired = jwt.encode({"sub": user["id"], "role": "user", "exp": now - 10}, JWT_SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": user["id"], "role": "user", "exp": now + 600}, "wrong-secret" * 4, algorithm="HS256")
    cases = [(expired, "Token has expired"), (forged, "Invalid token"), ("garbage", "Invalid token")]
    # A refused polling client takes a ping cycle to close (a python-socketio client trait): one case there.
    for token, text in cases if transports == ["websocket"] else cases[:1]:
        data = await refusal(live.base_url, {"token": token}, transports)
        assert data == {"message": f"Authentication error: {text}"}
    health = await live.api.get("/health")
    assert health.body["clients"] == 0


async def test_no_token_is_anonymous_and_gets_public_events(live):
    """No token: the socket gets `cases:updated` but no user's events, and `user:identify` is refused."""
    _, user = await live.api.register("someone")
    client, rec = await connect_socket(live.base_url)
    try:
        ack = await client.call("user:identify", {"userId": user["id"]}, timeout=WAIT)
        assert ack == {"success": False, "error": "Connect with your token (auth: {token}) before identifying",
                       "code": "identify_refused"}
        assert (await live.api.pay(user["id"], 100)).status == 200
        await barrier(live, rec)
        assert rec.names() == ["cases:updated"]
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_a_socket_never_joins_another_users_room(live, transports):
    """A's socket asks to identify as B: refused, and B's balance events never reach it."""
    token_a, user_a = await live.api.register("user_a")
    _, user_b = await live.api.register("user_b")
    client, rec = await connect_socket(live.base_url, token=token_a, transports=transports)
    try:
        for data in ({"userId": user_b["id"]}, {"userId": [user_b["id"]]}, {"userId": None}, {}, user_b["id"]):
            ack = await client.call("user:identify", data, timeout=WAIT)
            assert ack == {"success": False, "error": "userId does not match the authenticated user",
                           "code": "identify_refused"}, (data, ack)

        await assert_gets_only_own_balance_event(live, rec, user_a, user_b)
    finally:
        await client.disconnect()


async def test_extra_handshake_fields_cannot_pick_another_room(live):
    """A's token plus B's id (or room name) in the handshake auth: only A's room is joined."""
    token_a, user_a = await live.api.register("hand_a")
    _, user_b = await live.api.register("hand_b")
    client, rec = socketio.AsyncClient(reconnection=False), Recorder()
    client.on("*", rec.record)
    auth = {"token": token_a, "userId": user_b["id"], "room": f"user:{user_b['id']}"}
    await client.connect(live.base_url, auth=auth, transports=["websocket"], wait_timeout=WAIT)
    try:
        await assert_gets_only_own_balance_event(live, rec, user_a, user_b)
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_identify_with_own_id_is_accepted(live, transports):
    """`user:identify` with the socket's own id acks success; events keep arriving once."""
    token, user = await live.api.register("carol")
    client, rec = await connect_socket(live.base_url, token=token, transports=transports)
    try:
        assert await client.call("user:identify", {"userId": user["id"]}, timeout=WAIT) == {"success": True}
        assert (await live.api.pay(user["id"], 50)).status == 200
        assert await rec.wait_for(f"balance:updated:{user['id']}") == [{"balance": 50}]
        await barrier(live, rec)
        assert rec.names() == [f"balance:updated:{user['id']}", "cases:updated"]
    finally:
        await client.disconnect()


async def test_identify_flooding_is_refused(start_live):
    live = await start_live(rate_limit_socket_events="3/minute")
    token, user = await live.api.register("flooder")
    client, rec = await connect_socket(live.base_url, token=token)
    try:
        acks = [await client.call("user:identify", {"userId": user["id"]}) for _ in range(5)]
        assert acks[:3] == [{"success": True}] * 3
        assert all(ack["code"] == "rate_limited" and ack["success"] is False for ack in acks[3:])
        # The socket stays usable: its room still gets its events.
        await live.api.pay(user["id"], 10)
        assert await rec.wait_for(f"balance:updated:{user['id']}") == [{"balance": 10}]
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_handshake_refuses_tokens_that_rest_refuses(live, transports):
    """A socket is authenticated exactly as a REST request: a correctly signed,
    unexpired token is still refused when its user is gone or it was revoked."""
    token, user = await live.api.register("revoked_rita")
    await live.db.users.update_one({"_id": user["id"]}, {"$inc": {"tokenVersion": 1}})
    assert (await live.api.get("/api/profile", token=token)).body["code"] == "token_revoked"
    data = await refusal(live.base_url, {"token": token}, transports)
    assert data == {"message": "Authentication error: Token was revoked by a password change; log in again"}

    gone_token, gone = await live.api.register("deleted_dan")
    await live.db.users.delete_one({"_id": gone["id"]})
    assert (await live.api.get("/api/profile", token=gone_token)).body["code"] == "invalid_token"
    data = await refusal(live.base_url, {"token": gone_token}, transports)
    assert data == {"message": "Authentication error: The token's user does not exist"}
