"""Upgrades over REST: POST /api/upgrades, GET /api/fair/verify/upgrade (public),
GET /api/admin/stats/upgrades (admin). The rules are cyberhub/games/upgrades/operation.py's."""

from __future__ import annotations

import re

from cyberhub.admin import stats as admin_stats
from cyberhub.games.upgrades import operation as upgrades
from cyberhub.games.upgrades import stats as upgrade_stats
from cyberhub.games.upgrades.models import UpgradeRequest, UpgradeResponse, UpgradeStatsResponse, UpgradeVerifyResponse
from cyberhub.money import idempotency
from cyberhub.platform.ids import new_id
from cyberhub.platform.openapi import Operation, Param, endpoints
from handlers.admin import TAGS as ADMIN_TAGS
from handlers.admin import StatsBase, range_params
from handlers.base import BaseHandler
from handlers.fair import MAX_QUERY_INT, VerifyHandler, invalid

# A plain decimal (what JSON writes for a chance, exponent included); never nan or inf.
CHANCE_TEXT = re.compile(r"[0-9]{1,20}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?|\.[0-9]{1,30}")


class UpgradeHandler(BaseHandler):
    required_role = "user"
    rate_limits = (("upgrade_per_user", "user"),)
    api = endpoints(
        post=Operation(
            "Stake owned items for a chance at a more valuable item of an active case "
            "(chance = min(stake × (1 − UPGRADE_HOUSE_EDGE) / target, UPGRADE_MAX_CHANCE))",
            UpgradeResponse,
            request=UpgradeRequest,
            auth="user",
            errors=(400, 404, 409),
            tags=("economy",),
            params=(
                Param("Idempotency-Key", "header", {"type": "string", "pattern": "^[!-~]{1,255}$"},
                      description="Retries with the same key return the first result"),
            ),
        )
    )

    async def post(self) -> None:
        body = self.parse_body(UpgradeRequest)
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            status, payload = await self._upgrade(body, None)
        else:
            (status, payload), _replayed = await idempotency.run_once(
                self.db, user_id=self.user_id, key=idempotency.check_key(key),
                fingerprint=idempotency.request_hash("POST", self.request.path, self.raw_body),
                action=lambda op_id: self._upgrade(body, op_id),
                wait_seconds=self.services.settings.idempotency_wait_seconds,
                start_within_seconds=self.services.settings.operation_deadline_seconds,
            )
        self.write_json(payload, status)

    async def _upgrade(self, body: UpgradeRequest, op_id: str | None) -> tuple[int, dict]:
        settings = self.services.settings
        result = await upgrades.upgrade(
            self.db, user_id=self.user_id, item_ids=body.item_ids, target_item_id=body.target_item_id,
            case=await self.services.catalogue_cache.active_case(self.db, body.case_id), op_id=op_id or new_id(),
            rules=upgrades.Rules(house_edge=settings.upgrade_house_edge, max_chance=settings.upgrade_max_chance,
                                 min_chance=settings.upgrade_min_chance),
            deadline_seconds=settings.operation_deadline_seconds, user=self.user,
        )
        await self.notifier.inventory_updated(self.user_id)
        await self.notifier.upgrade_new(result.feed)
        return 200, result.body


class UpgradeVerifyHandler(VerifyHandler):
    """The sibling of GET /api/fair/verify (its query parsing and rate limit)."""

    api = endpoints(
        get=Operation(
            "Recompute a past upgrade's roll: won ⇔ roll < chance",
            UpgradeVerifyResponse,
            errors=(400,),
            tags=("fair",),
            params=(
                Param("serverSeed", "query", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, required=True),
                Param("clientSeed", "query", {"type": "string", "pattern": "^[ -~]{1,64}$"}, required=True),
                Param("nonce", "query", {"type": "integer", "minimum": 0, "maximum": MAX_QUERY_INT}, required=True),
                Param("chance", "query", {"type": "number", "minimum": 0, "maximum": 1}, required=True,
                      description="the upgrade's `chance` as answered"),
            ),
        )
    )

    async def get(self) -> None:
        server_seed, client_seed, nonce = self._seed_pair()
        text = self._arg("chance")
        chance = float(text) if CHANCE_TEXT.fullmatch(text) else -1.0
        if not 0 <= chance <= 1:
            raise invalid("chance", "must be a number from 0 to 1")
        roll, won = upgrades.draw(server_seed, client_seed, nonce, chance)
        self.write_json(UpgradeVerifyResponse(roll=roll, chance=chance, won=won))


class AdminUpgradeStatsHandler(StatsBase):
    api = endpoints(get=Operation(
        "Upgrades in [from, to): count, wins, stake and payout, realized and expected RTP; rtpAlarm when the "
        "payout is outside the 99.9 % interval the chances predict", UpgradeStatsResponse,
        auth="admin", errors=(400,), tags=ADMIN_TAGS, params=range_params()))

    async def get(self) -> None:
        match = admin_stats.time_range(**self.range())
        self.write_json(UpgradeStatsResponse.model_validate(await upgrade_stats.summary(self.db, match)))


default_handlers = [
    (r"/api/upgrades", UpgradeHandler),
    (r"/api/fair/verify/upgrade", UpgradeVerifyHandler),
    (r"/api/admin/stats/upgrades", AdminUpgradeStatsHandler),
]
