"""Suspension: `suspended: {reason, at, by}` on the user document.

The one authentication function (`accounts.users.user_for_token`, REST and
Socket.IO handshakes alike) refuses a suspended account, so every token stops
at once. Suspended by an admin (admin.users) or by the system when a payment
reversal falls short (money.reversals). Money and items are not touched.
"""

from __future__ import annotations

from typing import Any

from cyberhub.platform.ids import now
from cyberhub.realtime.sockets import user_room
from cyberhub.store.db import Database, ReturnDocument


async def suspend(db: Database, *, user_id: str, reason: str, by: str, projection: dict | None = None) -> dict | None:
    """Suspend unless already suspended (the first suspension's reason is
    kept). Returns the user after the change, or None when nothing changed."""
    return await db.users.find_one_and_update(
        {"_id": user_id, "suspended": None},
        {"$set": {"suspended": {"reason": reason, "at": now(), "by": by}}},
        projection=projection, return_document=ReturnDocument.AFTER,
    )


async def restore(db: Database, *, user_id: str, projection: dict | None = None) -> dict | None:
    """Lift a suspension. Returns the user, or None when there is no such user."""
    return await db.users.find_one_and_update(
        {"_id": user_id}, {"$set": {"suspended": None}},
        projection=projection, return_document=ReturnDocument.AFTER,
    )


async def disconnect_sockets(sio: Any, user_id: str) -> int:
    """Disconnect the player's sockets connected to this process, then close
    their room everywhere: with the Redis manager `close_room` is relayed, so
    on the other processes their sockets leave the room (no more private
    events; `user:identify` re-checks the token, so they cannot rejoin); those
    sockets stay open for public events until they reconnect, which the
    suspension refuses. Returns the sockets disconnected here."""
    room = user_room(user_id)
    sids = [sid for sid, _eio_sid in sio.manager.get_participants("/", room)]
    for sid in sids:
        await sio.disconnect(sid)
    await sio.close_room(room, namespace="/")
    return len(sids)

