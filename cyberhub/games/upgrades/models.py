"""Wire shapes of upgrades (README, "Upgrades")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from cyberhub.catalogue.models import DropItem, FairPublic
from cyberhub.money.models import InventoryItemPublic
from cyberhub.platform.models import Envelope, Identifier, PublicModel, RequestModel

MAX_STAKE_ITEMS = 10


class UpgradeRequest(RequestModel):
    # Distinctness is checked by the domain (400 duplicate_items) so the error says so.
    item_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_STAKE_ITEMS)]
    case_id: Identifier
    target_item_id: Identifier


class UpgradeTarget(PublicModel):
    case_id: str
    case_version: int
    item_id: str
    name: str
    rarity: str
    price: int
    image: str | None


class UpgradePublic(PublicModel):
    id: str
    won: bool
    chance: float
    roll: float
    stake_value: int
    target_value: int
    item_ids: list[str]
    target: UpgradeTarget
    item: InventoryItemPublic | None
    fair: FairPublic
    created_at: datetime


class UpgradeResponse(Envelope):
    upgrade: UpgradePublic


class UpgradeVerifyResponse(Envelope):
    roll: float
    chance: float
    won: bool


class UpgradeFeedPublic(PublicModel):
    """The `upgrade:new` payload."""

    username: str
    won: bool
    chance: float
    stake_value: int
    item: DropItem


class UpgradeStatsResponse(Envelope):
    upgrades: int
    wins: int
    stake_value: int
    payout: int
    expected_payout: float
    payout_std_dev: float
    realized_rtp: float | None
    expected_rtp: float | None
    rtp_alarm: bool
