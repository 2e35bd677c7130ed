"""POST /api/cases/open, GET /api/inventory, POST /api/inventory/claim."""

from __future__ import annotations

from cyberhub.money import idempotency, inventory, openings
from cyberhub.money.models import ClaimRequest, ClaimResponse, InventoryResponse, OpenCaseRequest, OpenCaseResponse
from cyberhub.platform.ids import new_id
from cyberhub.platform.openapi import Operation, Param, endpoints
from handlers.base import BaseHandler, cursor_param, limit_param


class OpenCaseHandler(BaseHandler):
    required_role = "user"
    rate_limits = (("open_per_user", "user"), ("open_per_ip", "ip"))
    api = endpoints(
        post=Operation(
            "Open a case: debit its price, draw an item, add it to the inventory",
            OpenCaseResponse,
            request=OpenCaseRequest,
            auth="user",
            errors=(404, 409),
            tags=("economy",),
            params=(
                Param(
                    "Idempotency-Key",
                    "header",
                    {"type": "string", "pattern": "^[!-~]{1,255}$"},
                    description="Retries with the same key return the first result",
                ),
            ),
        )
    )

    async def post(self) -> None:
        body = self.parse_body(OpenCaseRequest)
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            status, payload = await self._open(body.case_id, None)
            self.write_json(payload, status)
            return
        (status, payload), _replayed = await idempotency.run_once(
            self.db,
            user_id=self.user_id,
            key=idempotency.check_key(key),
            fingerprint=idempotency.request_hash("POST", self.request.path, self.raw_body),
            action=lambda op_id: self._open(body.case_id, op_id),
            wait_seconds=self.services.settings.idempotency_wait_seconds,
            start_within_seconds=self.services.settings.operation_deadline_seconds,
        )
        self.write_json(payload, status)

    async def _open(self, case_id: str, op_id: str | None) -> tuple[int, dict]:
        # The case from the catalogue cache and the user as authentication read it:
        # two store reads fewer per opening (docs/MONEY.md, "Store calls").
        result = await openings.open_case(
            self.db, user_id=self.user_id, case_id=case_id, op_id=op_id or new_id(),
            deadline_seconds=self.services.settings.operation_deadline_seconds,
            case=await self.services.catalogue_cache.active_case(self.db, case_id), user=self.user,
        )
        self.services.metrics.cases_opened.inc()
        await self.notifier.balance_updated(self.user_id, result.balance)
        await self.notifier.inventory_updated(self.user_id)
        await self.notifier.drop_new(result.drop)
        return 200, openings.response_body(result)


class InventoryHandler(BaseHandler):
    required_role = "user"
    api = endpoints(
        get=Operation(
            "The user's items, newest first",
            InventoryResponse,
            auth="user",
            errors=(400,),
            tags=("economy",),
            params=(
                limit_param(),
                cursor_param(inventory.CURSOR_PATTERN),
            ),
        )
    )

    async def get(self) -> None:
        docs, next_cursor = await inventory.list_items(
            self.db, user_id=self.user_id, limit=self.page_limit(), cursor=self.page_cursor())
        self.write_json(InventoryResponse(items=[inventory.public_item(d) for d in docs], next_cursor=next_cursor))


class ClaimHandler(BaseHandler):
    required_role = "user"
    rate_limits = (("claim_per_user", "user"),)
    api = endpoints(
        post=Operation(
            "Sell an owned item for its price",
            ClaimResponse,
            request=ClaimRequest,
            auth="user",
            errors=(404, 409),
            tags=("economy",),
        )
    )

    async def post(self) -> None:
        body = self.parse_body(ClaimRequest)
        sale = await inventory.claim(self.db, user_id=self.user_id, item_id=body.item_id)
        self.services.metrics.items_sold.inc()
        await self.notifier.balance_updated(self.user_id, sale.balance)
        await self.notifier.inventory_updated(self.user_id)
        self.write_json(ClaimResponse(item_id=sale.item_id, amount=sale.amount, balance=sale.balance))


default_handlers = [
    (r"/api/cases/open", OpenCaseHandler),
    (r"/api/inventory", InventoryHandler),
    (r"/api/inventory/claim", ClaimHandler),
]
