"""Case battles over REST (README.md, "Case battles"): the lobby, creating,
joining, leaving, bots; the back office's battle list and statistics."""

from __future__ import annotations

from cyberhub.admin import stats as admin_stats
from cyberhub.games.battles import lists as battle_lists
from cyberhub.games.battles import seats as battles
from cyberhub.games.battles import stats as battle_stats
from cyberhub.games.battles.models import (
    BattleListResponse,
    BattleResponse,
    BattleStatsResponse,
    CreateBattleRequest,
    JoinBattleRequest,
)
from cyberhub.games.battles.reveal import BattleRunner
from cyberhub.games.battles.view import public_battle
from cyberhub.money import idempotency
from cyberhub.platform.errors import BadRequest
from cyberhub.platform.ids import new_id
from cyberhub.platform.openapi import Operation, Param, endpoints
from handlers.admin import AdminHandler, StatsBase, range_params
from handlers.base import BaseHandler, cursor_param, limit_param
from settings import Settings

TAGS = ("battles",)
STATUS_PARAM = Param("status", "query", {"type": "string", "enum": ["", *battles.STATUSES]},
                     description="Only battles in this status; empty: all")
KEY_PARAM = Param("Idempotency-Key", "header", {"type": "string", "pattern": "^[!-~]{1,255}$"},
                  description="Retries with the same key return the first result")


def adjust_document(doc: dict, settings: Settings) -> None:
    """The served document states this deployment's BATTLE_MAX_CASES (the
    model's bound is the 1-100 range of the setting), so clients and fuzzers
    know more cases are bad input (400 too_many_cases)."""
    schema = doc.get("components", {}).get("schemas", {}).get("CreateBattleRequest")
    if schema is not None:
        schema["properties"]["caseIds"]["maxItems"] = settings.battle_max_cases


class BattleHandler(BaseHandler):
    @property
    def battles(self) -> BattleRunner:  # the process's reveal runner (and battle events)
        return self.services.battles

    async def announce(self, battle: dict, *, paid: list[str] = ()) -> None:
        """After a change: the lobby, the balances that moved, and the reveal once started."""
        for user_id in paid:
            user = await self.db.users.find_one({"_id": user_id}, projection={"balance": 1})
            if user is not None:
                await self.notifier.balance_updated(user_id, user["balance"])
        await self.battles.events.lobby(battle)
        if battle["status"] == battles.WAITING and battle["paid"] == battle["size"]:
            started = await battles.try_start(self.db, battle["_id"])
            if started is not None:
                battle = started
                await self.battles.events.lobby(started)
        if battle["status"] == battles.RUNNING:
            self.battles.ensure(battle["_id"])

    def answer(self, battle: dict, status: int = 200) -> None:
        self.write_json({"success": True, "battle": public_battle(battle)}, status)


class BattlesHandler(BattleHandler):
    api = endpoints(
        get=Operation("Battles, newest first (the lobby: ?status=waiting)", BattleListResponse, errors=(400,),
                      tags=TAGS, params=(STATUS_PARAM, limit_param(), cursor_param(battle_lists.CURSOR_PATTERN))),
        post=Operation("Create a battle: pay the entry (Σ case prices) and sit in slot 0", BattleResponse,
                       request=CreateBattleRequest, auth="user", status=201, errors=(404, 409), tags=TAGS,
                       params=(KEY_PARAM,)),
    )

    async def get(self) -> None:
        docs, next_cursor = await battle_lists.list_battles(
            self.db, status=self.get_query_argument("status", "", strip=False), limit=self.page_limit(),
            cursor=self.page_cursor())
        self.write_json({"success": True, "battles": [public_battle(d, rounds=False) for d in docs],
                         "nextCursor": next_cursor})

    async def prepare(self) -> None:
        # The lobby is public; creating a battle needs a player.
        self.required_role = "user" if self.request.method == "POST" else None
        await super().prepare()

    async def post(self) -> None:
        body = self.parse_body(CreateBattleRequest)
        limit = self.services.settings.battle_max_cases
        if len(body.case_ids) > limit:
            # Bad input: the served document says maxItems = BATTLE_MAX_CASES (adjust_document).
            raise BadRequest(f"At most {limit} cases per battle", code="too_many_cases")
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            status, payload = await self._create(body, new_id())
        else:
            (status, payload), _ = await idempotency.run_once(
                self.db, user_id=self.user_id, key=idempotency.check_key(key),
                fingerprint=idempotency.request_hash("POST", self.request.path, self.raw_body),
                action=lambda op_id: self._create(body, op_id),
                wait_seconds=self.services.settings.idempotency_wait_seconds,
                start_within_seconds=self.services.settings.operation_deadline_seconds,
            )
        self.write_json(payload, status)

    async def _create(self, body: CreateBattleRequest, op_id: str) -> tuple[int, dict]:
        battle = await battles.create(self.db, user=self.user, case_ids=body.case_ids, mode=body.mode,
                                      crazy=body.crazy, op_id=op_id,
                                      max_open=self.services.settings.battle_max_open_per_user)
        await self.announce(battle, paid=[self.user_id])
        return 201, {"success": True, "battle": public_battle(battle)}


class BattleOneHandler(BattleHandler):
    api = endpoints(get=Operation("One battle: its rounds as far as revealed", BattleResponse, errors=(404,),
                                  tags=TAGS))

    async def get(self, battle_id: str) -> None:
        self.answer(await battles.get(self.db, battle_id))


class BattleJoinHandler(BattleHandler):
    required_role = "user"
    api = endpoints(post=Operation("Join: pay the entry and take a seat (the last seat starts the battle)",
                                   BattleResponse, request=JoinBattleRequest, auth="user", errors=(404, 409),
                                   tags=TAGS))

    async def post(self, battle_id: str) -> None:
        body = self.parse_body(JoinBattleRequest)
        battle = await battles.join(self.db, user=self.user, battle_id=battle_id, slot=body.slot)
        await self.announce(battle, paid=[self.user_id])
        self.answer(await battles.get(self.db, battle_id))


class BattleBotsHandler(BattleHandler):
    required_role = "user"
    api = endpoints(post=Operation("Fill every empty seat with a house bot and start (creator only)",
                                   BattleResponse, auth="user", errors=(403, 404, 409), tags=TAGS))

    async def post(self, battle_id: str) -> None:
        battle = await battles.add_bots(self.db, user_id=self.user_id, battle_id=battle_id)
        await self.announce(battle)
        self.answer(await battles.get(self.db, battle_id))


class BattleLeaveHandler(BattleHandler):
    required_role = "user"
    api = endpoints(post=Operation("Leave before the start, refunded (the creator leaving cancels the battle and "
                                   "refunds everyone)", BattleResponse, auth="user", errors=(404, 409), tags=TAGS))

    async def post(self, battle_id: str) -> None:
        battle = await battles.leave(self.db, user_id=self.user_id, battle_id=battle_id)
        refunded = battles.refunded_users(battle) if battle["status"] == battles.CANCELLED else []
        await self.announce(battle, paid=sorted({self.user_id, *refunded}))
        self.answer(battle)


class AdminBattlesHandler(AdminHandler):
    api = endpoints(get=Operation(
        "Every battle, newest first, by status and by player", BattleListResponse, auth="admin", errors=(400,),
        tags=("admin",), params=(STATUS_PARAM,
                                 Param("userId", "query", {"type": "string", "maxLength": 128},
                                       description="Battles this player sat in; empty: any"),
                                 limit_param(), cursor_param(battle_lists.CURSOR_PATTERN))))

    async def get(self) -> None:
        user_id = self.text_arg("userId")
        if len(user_id) > 128:
            raise BadRequest("userId is at most 128 characters", code="invalid_user_id")
        docs, next_cursor = await battle_lists.list_battles(
            self.db, status=self.text_arg("status"), user_id=user_id, limit=self.page_limit(),
            cursor=self.page_cursor())
        self.write_json({"success": True, "battles": [public_battle(d, rounds=False) for d in docs],
                         "nextCursor": next_cursor})


class AdminBattleStatsHandler(StatsBase):
    api = endpoints(get=Operation(
        "Battles in [from, to): finished and cancelled battles, entries and refunds (ledger), the value of items "
        "given to players and kept by the house (bots-only winning teams)", BattleStatsResponse, auth="admin",
        errors=(400,), tags=("admin",), params=range_params()))

    async def get(self) -> None:
        span = self.range()
        result = await battle_stats.stats(self.db, time_range=admin_stats.time_range(span["start"], span["end"]))
        self.write_json(BattleStatsResponse.model_validate(result))


default_handlers = [
    (r"/api/battles", BattlesHandler),
    (r"/api/battles/([^/]+)", BattleOneHandler),
    (r"/api/battles/([^/]+)/join", BattleJoinHandler),
    (r"/api/battles/([^/]+)/bots", BattleBotsHandler),
    (r"/api/battles/([^/]+)/leave", BattleLeaveHandler),
    (r"/api/admin/battles", AdminBattlesHandler),
    (r"/api/admin/stats/battles", AdminBattleStatsHandler),
]
