"""Request bodies and answers of the admin back office (handlers/admin.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from cyberhub.catalogue.models import CasePublic
from cyberhub.platform.models import MAX_PRICE, Envelope, PublicModel, RequestModel, WholeNumber, readable


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValueError("amount must not be 0")
    return value


# 1–500 characters as sent, at least one of them not white space, no control or
# bidi-control character (an operator reads it back in the ledger and audit).
ReasonText = readable(500)


class AdjustmentRequest(RequestModel):
    amount: WholeNumber = Field(ge=-MAX_PRICE, le=MAX_PRICE, json_schema_extra={"not": {"const": 0}})
    reason: ReasonText

    _amount_not_zero = field_validator("amount")(_not_zero)


class SuspendRequest(RequestModel):
    reason: ReasonText


class AdminCase(CasePublic):
    active: bool
    created_at: datetime | None = None
    deleted_at: datetime | None = None


class AdminCaseListResponse(Envelope):
    cases: list[AdminCase]


class CaseVersionItem(PublicModel):
    id: str
    name: str
    rarity: str
    price: int
    weight: int
    image: str | None = None


class CaseVersionPublic(PublicModel):
    version: int
    name: str
    price: int
    image: str | None = None
    items: list[CaseVersionItem]
    created_at: datetime | None
    admin_id: str | None


class CaseVersionsResponse(Envelope):
    versions: list[CaseVersionPublic]


class AdminCaseResponse(Envelope):
    case: AdminCase


class Suspension(PublicModel):
    reason: str
    at: datetime
    by: str


class AdminUser(PublicModel):
    id: str
    username: str
    role: Literal["user", "admin"]
    balance: int
    suspended: Suspension | None
    created_at: datetime | None
    last_active_at: datetime | None
    muted_until: datetime | None = None  # chat mute; null when not muted


class PlayerUpgrades(PublicModel):
    count: int
    staked: int  # Σ stake values
    won: int  # Σ values of the items won


class AdminUserDetail(AdminUser):
    cases_opened: int
    deposited: int
    reversed: int
    sold: int
    spent: int
    battle_spent: int = 0  # battle entries paid less those refunded
    adjusted: int
    net: int
    upgrades: PlayerUpgrades


class AdminUserListResponse(Envelope):
    users: list[AdminUser]
    next_cursor: str | None


class AdminUserResponse(Envelope):
    user: AdminUserDetail


class LedgerEntryPublic(PublicModel):
    id: str
    delta: int
    reason: str
    ref_id: str | None
    balance_after: int | None
    created_at: datetime
    admin_id: str | None = None
    text: str | None = None
    shortfall: int | None = None


class LedgerResponse(Envelope):
    entries: list[LedgerEntryPublic]
    next_cursor: str | None


class AdjustmentResponse(Envelope):
    adjustment_id: str
    balance: int


class AdminUserStateResponse(Envelope):
    user: AdminUser


class Delivery(PublicModel):
    id: str
    payment_id: str | None
    user_id: str | None
    amount: int | None
    currency: str | None
    status: str | None
    outcome: str
    received_at: datetime
    reversed_amount: int | None = None
    shortfall: int | None = None


class DeliveriesResponse(Envelope):
    deliveries: list[Delivery]
    next_cursor: str | None


class StatsResponse(Envelope):
    deposits: int
    reversals: int
    openings: int
    opening_revenue: int
    items_sold: int
    sales_payout: int
    adjustments: int
    battle_entries: int = 0
    battle_refunds: int = 0
    net: int
    active_players: int
    upgrades: int = 0


class CaseStats(PublicModel):
    case_id: str
    name: str | None
    openings: int
    revenue: int
    payout: int
    realized_rtp: float | None
    expected_rtp: float | None
    expected_payout: float
    payout_std_dev: float
    rtp_alarm: bool


class CaseStatsResponse(Envelope):
    cases: list[CaseStats]


class TimeBucket(PublicModel):
    start: datetime
    deposits: int
    reversals: int
    openings: int
    opening_revenue: int
    items_sold: int
    sales_payout: int
    adjustments: int
    battle_entries: int = 0
    battle_refunds: int = 0
    net: int
    upgrades: int = 0


class TimeseriesResponse(Envelope):
    bucket: Literal["hour", "day"]
    series: list[TimeBucket]


class AuditEntry(PublicModel):
    id: str
    admin_id: str
    action: str
    target: str
    details: dict[str, Any]
    created_at: datetime


class AuditResponse(Envelope):
    entries: list[AuditEntry]
    next_cursor: str | None
