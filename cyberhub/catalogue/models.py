"""Wire shapes of the catalogue: cases as admins send them and players see
them, seed pairs, verification, drops and public stats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from cyberhub.platform.models import (
    MAX_ITEMS,
    MAX_PRICE,
    MAX_WEIGHT,
    Envelope,
    PublicModel,
    RequestModel,
    WholeNumber,
    label,
)
from cyberhub.platform.text import READABLE_PATTERN

Name = label(100)
Rarity = label(32)
# Shown in the back office and rendered by every player's browser: no control
# or bidi-control character (platform/text.py), like every text people read.
ImageUrl = Annotated[str, StringConstraints(max_length=2048, pattern=READABLE_PATTERN)]
ClientSeed = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,64}$")]


class CaseItemInput(RequestModel):
    name: Name
    rarity: Rarity
    price: WholeNumber = Field(ge=0, le=MAX_PRICE)
    weight: WholeNumber = Field(gt=0, le=MAX_WEIGHT)
    image: ImageUrl | None = None


class CaseInput(RequestModel):
    name: Name
    price: WholeNumber = Field(gt=0, le=MAX_PRICE)
    image: ImageUrl | None = None
    items: list[CaseItemInput] = Field(min_length=1, max_length=MAX_ITEMS)


class ClientSeedRequest(RequestModel):
    client_seed: ClientSeed


class FairPublic(PublicModel):
    server_seed_hash: str
    client_seed: str
    nonce: int


class FairRevealed(FairPublic):
    server_seed: str


class CaseItemPublic(PublicModel):
    id: str
    name: str
    rarity: str
    price: int
    weight: int
    chance: float
    image: str | None


class CasePublic(PublicModel):
    id: str
    name: str
    price: int
    image: str | None
    version: int
    items: list[CaseItemPublic]
    expected_value: float
    rtp: float


class DropItem(PublicModel):
    name: str
    rarity: str
    price: int
    image: str | None


class DropPublic(PublicModel):
    username: str
    item: DropItem
    case_id: str
    case_name: str
    at: datetime | None = None


class CaseListResponse(Envelope):
    cases: list[CasePublic]


class CaseResponse(Envelope):
    case: CasePublic


class FairResponse(Envelope):
    fair: FairPublic


class FairRotateResponse(Envelope):
    previous: FairRevealed
    fair: FairPublic


class FairHistoryEntry(FairRevealed):
    revealed_at: datetime


class FairHistoryResponse(Envelope):
    seeds: list[FairHistoryEntry]


class VerifyResponse(Envelope):
    roll: float
    ticket: int
    item: CaseItemPublic


class PublicStatsResponse(Envelope):
    users: int
    cases_opened: int
    items_sold: int
    upgrades: int = 0
    online: int
    recent_drops: list[DropPublic]
