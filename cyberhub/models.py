"""Pydantic shapes: request bodies (strict, closed to unknown fields) and the
public documents the API returns. camelCase on the wire, as the frontend expects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

MAX_PRICE = 100_000_000_000  # minor units; keeps every sum far inside int64
MAX_WEIGHT = 1_000_000_000
MAX_JSON_INT = 2**53 - 1  # the largest integer every JSON parser reads exactly
MAX_ITEMS = 100



def _integral_float_as_int(value: object) -> object:
    """JSON Schema counts 2826999.0 as an integer, and so does the OpenAPI
    document, so such a number is taken as the integer it is. Anything else
    (1.5, "7", true) still meets the strict int check and is refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a request body (amounts, prices, weights in minor units).
WholeNumber = Annotated[int, BeforeValidator(_integral_float_as_int)]

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,32}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
# Names are trimmed of surrounding white space; they must hold something else.
# "White space" is ECMAScript's \s, written out, so that this server, the
# OpenAPI document's pattern and every client's regex engine agree on it
# (Python's str.strip() would also strip \x1c-\x1f and \x85).
WHITE_SPACE = ("\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
               "\u2028\u2029\u202f\u205f\u3000\ufeff")
NOT_BLANK = f"[^{WHITE_SPACE}]"


def _trim(value: str) -> str:
    return value.strip(WHITE_SPACE)


def _label(max_length: int) -> object:
    """A name-like string: 1..max_length characters as sent (so the document's
    maxLength holds), at least one not white space, stored trimmed."""
    return Annotated[str, StringConstraints(min_length=1, max_length=max_length, pattern=NOT_BLANK),
                     AfterValidator(_trim)]


Name = _label(100)
Rarity = _label(32)
ImageUrl = Annotated[str, StringConstraints(max_length=2048)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ClientSeed = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,64}$")]


class RequestModel(BaseModel):
    """Base of every request body: camelCase only, unknown fields refused, no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, validate_by_name=False)


class PublicModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True)


# --- requests ---------------------------------------------------------------


class Credentials(RequestModel):
    username: Username
    password: Password


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


class OpenCaseRequest(RequestModel):
    case_id: Identifier


class ClaimRequest(RequestModel):
    item_id: Identifier


class ClientSeedRequest(RequestModel):
    client_seed: ClientSeed


class PaymentCallback(RequestModel):
    # Visible ASCII only: it becomes part of ledger ids ("pay:<id>") and so of
    # the admin ledger's page cursors, which must survive a query string.
    payment_id: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
    user_id: Identifier
    # Bounded so that it is stored as int64 and exact in any JSON parser; the
    # business limit (PAYMENT_MAX_AMOUNT, 400 amount_too_large) is far below.
    amount: WholeNumber = Field(gt=0, le=MAX_JSON_INT)
    currency: Annotated[str, StringConstraints(min_length=1, max_length=8)]
    status: Annotated[str, StringConstraints(min_length=1, max_length=32)]


# --- public shapes ------------------------------------------------------------


class FairPublic(PublicModel):
    server_seed_hash: str
    client_seed: str
    nonce: int


class FairRevealed(FairPublic):
    server_seed: str


class UserPublic(PublicModel):
    id: str
    username: str
    role: Literal["user", "admin"]
    balance: int
    cases_opened: int
    items_owned: int
    fair: FairPublic


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


class InventoryItemPublic(PublicModel):
    id: str
    name: str
    rarity: str
    price: int
    image: str | None
    case_id: str
    case_version: int
    status: Literal["owned", "sold"]
    won_at: datetime
    sold_at: datetime | None = None


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


# --- responses ----------------------------------------------------------------


class Envelope(PublicModel):
    success: Literal[True] = True


class ErrorDetail(PublicModel):
    field: str
    message: str


class ErrorResponse(PublicModel):
    success: Literal[False] = False
    error: str
    code: str
    details: list[ErrorDetail] | None = None


class AuthResponse(Envelope):
    token: str
    user: UserPublic


class ProfileResponse(Envelope):
    user: UserPublic


class CaseListResponse(Envelope):
    cases: list[CasePublic]


class CaseResponse(Envelope):
    case: CasePublic


class OpenCaseResponse(Envelope):
    item: InventoryItemPublic
    balance: int
    fair: FairPublic


class InventoryResponse(Envelope):
    items: list[InventoryItemPublic]
    next_cursor: str | None


class ClaimResponse(Envelope):
    item_id: str
    amount: int
    balance: int


class PaymentResponse(Envelope):
    duplicate: bool


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
    online: int
    recent_drops: list[DropPublic]


class HealthResponse(PublicModel):
    status: Literal["ok", "degraded"]
    websocket: str
    clients: int
    timestamp: str
