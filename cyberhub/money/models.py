"""Wire shapes of money moves: openings, the inventory, sales and payment deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from cyberhub.catalogue.models import FairPublic
from cyberhub.platform.models import MAX_JSON_INT, Envelope, Identifier, PublicModel, RequestModel, WholeNumber


class OpenCaseRequest(RequestModel):
    case_id: Identifier


class ClaimRequest(RequestModel):
    item_id: Identifier


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


class InventoryItemPublic(PublicModel):
    id: str
    name: str
    rarity: str
    price: int
    image: str | None
    case_id: str
    case_version: int
    status: Literal["owned", "sold", "upgraded"]  # upgraded: staked in an upgrade
    won_at: datetime
    sold_at: datetime | None = None
    # Where the item came from when not a case opening: "upgrade" (with its
    # upgradeId) or "battle" (with its battleId).
    source: str | None = None
    upgrade_id: str | None = None
    battle_id: str | None = None


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
