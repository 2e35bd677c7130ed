"""Chat messages: the text rule, the link rule, storing with a capped history.

History without scans: every message takes the next number of one counter
(`chat_state`, `_id: "seq"`, an atomic `$inc`, shared by every process), and
its `_id` is that number zero-padded, so ids sort in sending order. Storing a
message, once inserted, deletes every `_id` up to the counter's value less
CHAT_HISTORY_SIZE (a range of the primary key, on MongoDB and on the embedded
store alike, usually one document): once concurrent sends settle the history
holds no more than CHAT_HISTORY_SIZE messages, and no call reads more than it
returns.
The public id is the number without its padding.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from cyberhub.chat.models import iso
from cyberhub.platform.errors import BadRequest
from cyberhub.platform.ids import now
from cyberhub.platform.models import WHITE_SPACE
from cyberhub.platform.text import is_readable
from cyberhub.store.db import Database, DuplicateKeyError, ReturnDocument

ID_DIGITS = 15  # zero-padded _id: string order is number order
PUBLIC_ID = re.compile(r"[1-9][0-9]{0,14}")

# Links refused in chat (spam and phishing are what public chats get): any
# scheme://, "www." at a word start, and a bare domain name ending in one of
# these common TLDs ("discord.gg", "free-skins.com/x", "t.me"). TLDs that are
# also everyday English words ("to", "be", "us", "in", "it", "is", "at", "so",
# "no", "do") are left out so sentences like "next.to" pass; spaced-out
# domains ("site . com") are not recognised either.
LINK_TLDS = (
    "com", "net", "org", "io", "gg", "ru", "xyz", "info", "biz", "me", "co", "tv", "uk", "de", "fr", "cc", "su",
    "top", "site", "online", "shop", "store", "app", "dev", "link", "ly", "ws", "live", "pro", "club", "vip",
    "cn", "pw", "tk", "ml", "ga", "cf", "gq", "win", "bet", "casino", "fun", "ua", "pl", "eu",
)
_LINK = re.compile(
    r"[a-z][a-z0-9+.-]*://"  # any scheme: http://, https://, steam://...
    r"|(?<![a-z0-9])www\."
    r"|(?<![a-z0-9-])[a-z0-9-]+(?:\.[a-z0-9-]+)*"
    rf"\.(?:{'|'.join(LINK_TLDS)})(?![a-z0-9])",
    re.IGNORECASE,
)


def has_link(text: str) -> bool:
    return _LINK.search(text) is not None


def clean_text(raw: Any, max_length: int) -> str:
    """The text as stored and sent: trimmed of surrounding white space and
    otherwise exactly as typed (never HTML-escaped: the frontend escapes).
    Refused (400 validation_error) when not a string, empty after trimming,
    longer than `max_length` characters (code points) or holding a control or
    bidi-control character; a link → chat_link_refused."""
    if not isinstance(raw, str):
        raise BadRequest("text must be a string", code="validation_error")
    text = raw.strip(WHITE_SPACE)
    if not text:
        raise BadRequest("text must not be empty", code="validation_error")
    if len(text) > max_length:
        raise BadRequest(f"text must be at most {max_length} characters", code="validation_error")
    if not is_readable(text):
        raise BadRequest("text must not contain control characters", code="validation_error")
    if has_link(text):
        raise BadRequest("Links are not allowed in chat", code="chat_link_refused")
    return text


def stored_id(public_id: str) -> str | None:
    """The `_id` of a public message id; None for anything that is not one."""
    return public_id.zfill(ID_DIGITS) if PUBLIC_ID.fullmatch(public_id) else None


def public_message(doc: dict) -> dict:
    return {"id": doc["_id"].lstrip("0"), "userId": doc["userId"], "username": doc["username"],
            "text": doc["text"], "createdAt": iso(doc["createdAt"])}


async def store(db: Database, *, user_id: str, username: str, text: str, history_size: int) -> dict:
    """Stores one message and drops what fell out of the history."""
    # The counter exists from start-up (`trim_history`), so this never inserts
    # it: concurrent first messages cannot race an upsert (DuplicateKeyError).
    counter = await db.chat_state.find_one_and_update(
        {"_id": "seq"}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER)
    doc = {"_id": str(counter["value"]).zfill(ID_DIGITS), "userId": user_id, "username": username, "text": text,
           "createdAt": now()}
    await db.chat_messages.insert_one(doc)
    # After the insert, a range up to the counter as it is now, not one _id by
    # our own number: an earlier message whose insert lands after a later
    # message's delete is then dropped by its own delete (or by a later one),
    # so once the sends settle no more than `history_size` messages remain.
    latest = await db.chat_state.find_one({"_id": "seq"})
    if latest and latest["value"] > history_size:
        await db.chat_messages.delete_many({"_id": {"$lte": str(latest["value"] - history_size).zfill(ID_DIGITS)}})
    return doc


async def trim_history(db: Database, history_size: int) -> None:
    """At start-up: create the counter, and drop what a larger
    CHAT_HISTORY_SIZE of an earlier run kept (a range of the primary key)."""
    with contextlib.suppress(DuplicateKeyError):  # another process starting at once created it
        await db.chat_state.update_one({"_id": "seq"}, {"$setOnInsert": {"value": 0}}, upsert=True)
    counter = await db.chat_state.find_one({"_id": "seq"})
    if counter and counter["value"] > history_size:
        await db.chat_messages.delete_many({"_id": {"$lte": str(counter["value"] - history_size).zfill(ID_DIGITS)}})


async def recent(db: Database, limit: int) -> list[dict]:
    """The last `limit` messages, oldest first."""
    docs = await db.chat_messages.find({}).sort([("_id", -1)]).limit(limit).to_list(None)
    docs.reverse()
    return docs


async def remove(db: Database, public_id: str) -> dict | None:
    """Deletes a message (it never appears again); the removed document, or None."""
    key = stored_id(public_id)
    if key is None:
        return None
    return await db.chat_messages.find_one_and_delete({"_id": key})

