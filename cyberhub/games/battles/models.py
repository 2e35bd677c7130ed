"""Wire shapes of case battles (README.md, "Case battles")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from cyberhub.platform.models import Envelope, Identifier, PublicModel, RequestModel, WholeNumber

Mode = Literal["1v1", "1v1v1", "1v1v1v1", "2v2"]
Status = Literal["waiting", "running", "finished", "cancelled"]
WHOLE = WholeNumber.__metadata__[0]  # WholeNumber's own validator (1.0 is 1), to place beside Field()


MAX_CASES_LIMIT = 100  # the schema's bound; BATTLE_MAX_CASES (≤ this) is the business limit


class CreateBattleRequest(RequestModel):
    case_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_CASES_LIMIT)]
    mode: Mode
    crazy: bool = False


class JoinBattleRequest(RequestModel):
    # WholeNumber's rule, placed so that the bounds reach the document: Field()
    # after WholeNumber inside an Optional is emitted as raw ge/le keys no JSON
    # Schema reader knows.
    slot: Annotated[int, Field(ge=0, le=3), WHOLE] | None = None


class BattleCaseItem(PublicModel):
    name: str
    rarity: str
    price: int
    weight: int
    image: str | None = None


class BattleCase(PublicModel):
    case_id: str
    case_version: int
    name: str
    price: int
    image: str | None = None
    # The version's items in draw order, with weights: enough to verify every draw
    # (left out of lobby summaries).
    items: list[BattleCaseItem] | None = None


class BattleSlot(PublicModel):
    slot: int
    team: int
    user_id: str | None
    username: str
    bot: bool
    client_seed: str


class RoundItem(PublicModel):
    name: str
    rarity: str
    price: int
    image: str | None = None
    item_id: str | None  # the winner's inventory item, once the battle is finished


class RoundResult(PublicModel):
    slot: int
    item: RoundItem


class BattleRound(PublicModel):
    round: int
    results: list[RoundResult]


class BattlePublic(PublicModel):
    id: str
    status: Status
    mode: Mode
    crazy: bool
    cases: list[BattleCase]
    entry_cost: int
    slots: list[BattleSlot | None]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    server_seed_hash: str
    public_seed: str | None
    server_seed: str | None
    rounds: list[BattleRound] | None = None  # left out of lobby summaries
    totals: list[int]
    winners: list[int]


class BattleResponse(Envelope):
    battle: BattlePublic


class BattleListResponse(Envelope):
    battles: list[BattlePublic]
    next_cursor: str | None


class BattleStatsResponse(Envelope):
    battles: int  # battles finished in the range
    cancelled: int
    entries: int  # entry fees paid in the range (minor units)
    refunds: int
    paid_to_players: int  # value of the items finished battles gave to players
    kept_by_house: int  # value of the items won by bots-only teams: the house keeps them
    bot_seats: int
