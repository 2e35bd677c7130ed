"""Wire shapes of the chat: a message, the history answer, the mute request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from cyberhub.platform.ids import as_utc
from cyberhub.platform.models import WHITE_SPACE, Envelope, PublicModel, RequestModel, WholeNumber
from cyberhub.platform.text import FORBIDDEN_CHARACTERS

MAX_MUTE_MINUTES = 525_600  # one year


def iso(value: datetime) -> str:
    """ISO-8601 UTC with a Z, the chat's one time format on the wire (stored
    datetimes come back naive: they are UTC)."""
    utc = as_utc(value)
    assert utc is not None
    return utc.isoformat().replace("+00:00", "Z")


# 1–500 characters, at least one not white space, no control or bidi-control
# character (cyberhub/platform/text.py) — one pattern, so the OpenAPI document
# states exactly what the server accepts.
READABLE_REASON = f"^[^{FORBIDDEN_CHARACTERS}]*[^{WHITE_SPACE}{FORBIDDEN_CHARACTERS}][^{FORBIDDEN_CHARACTERS}]*$"
ReadableReason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=READABLE_REASON)]


class ChatMessage(PublicModel):
    id: str
    user_id: str
    username: str
    text: str
    created_at: datetime


class ChatMessagesResponse(Envelope):
    messages: list[ChatMessage]


class MuteRequest(RequestModel):
    minutes: WholeNumber = Field(ge=1, le=MAX_MUTE_MINUTES)
    reason: ReadableReason
