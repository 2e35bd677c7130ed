"""The admin back office over REST (README, "Admin back office"): players,
wallet adjustments, suspension, the audit trail. Admin role only."""

from __future__ import annotations

from cyberhub.accounts import suspension
from cyberhub.admin import adjustments, audit
from cyberhub.admin import cases as admin_cases
from cyberhub.admin import payments as admin_payments
from cyberhub.admin import stats as admin_stats
from cyberhub.admin import users as admin_users
from cyberhub.admin.models import (
    AdjustmentRequest,
    AdjustmentResponse,
    AdminCaseResponse,
    AdminUserListResponse,
    AdminUserResponse,
    AdminUserStateResponse,
    AuditResponse,
    CaseStatsResponse,
    CaseVersionsResponse,
    DeliveriesResponse,
    LedgerResponse,
    StatsResponse,
    SuspendRequest,
    TimeseriesResponse,
)
from cyberhub.catalogue import cases as catalogue
from cyberhub.money import idempotency
from cyberhub.platform.ids import new_id
from cyberhub.platform.openapi import Operation, Param, endpoints
from handlers.base import AdminBase, cursor_param, limit_param
from handlers.cases import CatalogueAdminBase

TAGS = ("admin",)


class AdminHandler(AdminBase):
    def text_arg(self, name: str, default: str = "") -> str:
        return self.get_query_argument(name, default, strip=False)


# --- players ----------------------------------------------------------------------------------


class AdminUsersHandler(AdminHandler):
    api = endpoints(get=Operation(
        "Players: search by username prefix (case-insensitive) or exact id, sorted, paged", AdminUserListResponse,
        auth="admin", errors=(400,), tags=TAGS,
        params=(
            Param("q", "query", {"type": "string", "pattern": admin_users.QUERY_PATTERN},
                  description="Username prefix (case-insensitive) or an exact user id; empty: everyone"),
            Param("sort", "query", {"type": "string", "enum": list(admin_users.SORTS), "default": "created"},
                  description="balance: highest first; created: newest first; active: most recently active first"),
            limit_param(),
            cursor_param(admin_users.USER_CURSOR_PATTERN,
                         "nextCursor of the previous page (same q and sort): <sort value>_<user id>"),
        ),
    ))

    async def get(self) -> None:
        users, next_cursor = await admin_users.list_users(
            self.db, q=self.text_arg("q"), sort=self.text_arg("sort", "created"), limit=self.page_limit(),
            cursor=self.page_cursor())
        self.write_json(AdminUserListResponse.model_validate(
            {"users": [admin_users.public_user(u) for u in users], "nextCursor": next_cursor}))


class AdminUserHandler(AdminHandler):
    api = endpoints(get=Operation(
        "One player with sums from their ledger (deposited, reversed, sold, spent, battleSpent, adjusted, "
        "net = spent + battleSpent − sold)",
        AdminUserResponse, auth="admin", errors=(404,), tags=TAGS))

    async def get(self, user_id: str) -> None:
        doc = await admin_users.get_user(self.db, user_id)
        summary = await admin_users.money_summary(self.db, user_id)
        self.write_json(AdminUserResponse.model_validate({"user": {
            **admin_users.public_user(doc), "casesOpened": doc.get("casesOpened", 0), **summary}}))


class AdminUserLedgerHandler(AdminHandler):
    api = endpoints(get=Operation(
        "A player's ledger, newest first", LedgerResponse, auth="admin", errors=(400, 404), tags=TAGS,
        params=(limit_param(), cursor_param(admin_users.LEDGER_CURSOR_PATTERN,
                                            "nextCursor of the previous page: <epoch millis>_<entry id>")),
    ))

    async def get(self, user_id: str) -> None:
        limit, cursor = self.page_limit(), self.page_cursor()
        await admin_users.get_user(self.db, user_id)
        entries, next_cursor = await admin_users.ledger_page(self.db, user_id=user_id, limit=limit, cursor=cursor)
        self.write_json(LedgerResponse.model_validate(
            {"entries": [admin_users.public_entry(e) for e in entries], "nextCursor": next_cursor}))


class AdminAdjustmentHandler(AdminHandler):
    api = endpoints(post=Operation(
        "Credit (amount > 0) or debit (amount < 0) a player's balance through the ledger", AdjustmentResponse,
        request=AdjustmentRequest, auth="admin", errors=(404, 409), tags=TAGS,
        params=(Param("Idempotency-Key", "header", {"type": "string", "pattern": "^[!-~]{1,255}$"},
                      description="Retries with the same key (per admin) return the first result"),),
    ))

    async def post(self, user_id: str) -> None:
        body = self.parse_body(AdjustmentRequest)
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            status, payload = await self._adjust(user_id, body, new_id())
        else:
            (status, payload), _replayed = await idempotency.run_once(
                self.db, user_id=self.user_id, key=idempotency.check_key(key),
                fingerprint=idempotency.request_hash("POST", self.request.path, self.raw_body),
                action=lambda op_id: self._adjust(user_id, body, op_id),
                wait_seconds=self.services.settings.idempotency_wait_seconds,
                start_within_seconds=self.services.settings.operation_deadline_seconds,
            )
        self.write_json(payload, status)

    async def _adjust(self, user_id: str, body: AdjustmentRequest, op_id: str) -> tuple[int, dict]:
        result = await adjustments.adjust(
            self.db, admin_id=self.user_id, user_id=user_id, amount=body.amount, text=body.reason, op_id=op_id,
            deadline_seconds=self.services.settings.operation_deadline_seconds)
        await self.notifier.balance_updated(user_id, result.balance)
        return 200, adjustments.response_body(result.adjustment_id, result.balance)


class AdminSuspendHandler(AdminHandler):
    api = endpoints(post=Operation(
        "Suspend a player: every token refused (403 account_suspended), sockets disconnected; money and items "
        "stay", AdminUserStateResponse, request=SuspendRequest, auth="admin", errors=(404, 409), tags=TAGS))

    async def post(self, user_id: str) -> None:
        body = self.parse_body(SuspendRequest)
        doc = await admin_users.suspend(self.db, user_id=user_id, reason=body.reason, by=self.user_id)
        await self.audit("user.suspend", user_id, {"reason": body.reason})
        await suspension.disconnect_sockets(self.services.sio, user_id)
        self.write_json(AdminUserStateResponse.model_validate({"user": admin_users.public_user(doc)}))


class AdminRestoreUserHandler(AdminHandler):
    api = endpoints(post=Operation("Lift a player's suspension", AdminUserStateResponse, auth="admin",
                                   errors=(404,), tags=TAGS))

    async def post(self, user_id: str) -> None:
        doc = await admin_users.restore(self.db, user_id=user_id)
        await self.audit("user.restore", user_id)
        self.write_json(AdminUserStateResponse.model_validate({"user": admin_users.public_user(doc)}))


# --- cases ------------------------------------------------------------------------------------


class AdminCaseRestoreHandler(CatalogueAdminBase):
    api = endpoints(post=Operation("List a deleted case again (cases:updated is emitted)", AdminCaseResponse,
                                   auth="admin", errors=(404, 409), tags=TAGS))

    async def post(self, case_id: str) -> None:
        case = await catalogue.restore_case(self.db, case_id)
        await self._changed()
        await self.audit("case.restore", case_id, {"version": case["version"]})
        self.write_json(AdminCaseResponse.model_validate({"case": admin_cases.admin_case(case)}))


class AdminCaseVersionsHandler(AdminHandler):
    api = endpoints(get=Operation("Every version of a case from the archive, oldest first (adminId: who made "
                                  "it; null for versions archived before it was recorded)", CaseVersionsResponse,
                                  auth="admin", errors=(404,), tags=TAGS))

    async def get(self, case_id: str) -> None:
        self.write_json(CaseVersionsResponse.model_validate({"versions": await admin_cases.versions(self.db, case_id)}))


# --- payments ---------------------------------------------------------------------------------


class AdminPaymentsHandler(AdminHandler):
    api = endpoints(get=Operation(
        "Payment deliveries, newest first (outcome: credited | duplicate | recorded | reversed | "
        "refused:<code>; processing while in flight)", DeliveriesResponse, auth="admin", errors=(400,), tags=TAGS,
        params=(
            *(Param(name, "query", {"type": "string", "maxLength": size}, description="Exact match; empty: any")
              for name, size in admin_payments.FILTERS.items()),
            limit_param(),
            cursor_param(audit.CURSOR_PATTERN, "nextCursor of the previous page: <epoch millis>_<delivery id>"),
        ),
    ))

    async def get(self) -> None:
        filters = {name: self.text_arg(name) for name in admin_payments.FILTERS}
        docs, next_cursor = await admin_payments.list_deliveries(
            self.db, filters=filters, limit=self.page_limit(), cursor=self.page_cursor())
        self.write_json(DeliveriesResponse.model_validate(
            {"deliveries": [admin_payments.public_delivery(d) for d in docs], "nextCursor": next_cursor}))


# --- stats ------------------------------------------------------------------------------------


def range_params() -> tuple[Param, ...]:
    return tuple(
        Param(name, "query", {"type": "string", "pattern": admin_stats.DATETIME_PATTERN},
              description=f"ISO-8601 date-time with an offset, e.g. 2026-11-21T00:00:00Z ({text}); empty: unbounded")
        for name, text in (("from", "inclusive"), ("to", "exclusive")))


class StatsBase(AdminHandler):
    def range(self) -> dict[str, str]:
        return {"start": self.text_arg("from"), "end": self.text_arg("to")}


class AdminStatsHandler(StatsBase):
    api = endpoints(get=Operation(
        "Money and play in [from, to) from the ledger (net = openingRevenue + battleEntries − battleRefunds − "
        "salesPayout; activePlayers: players who opened a case)", StatsResponse, auth="admin", errors=(400,),
        tags=TAGS, params=range_params()))

    async def get(self) -> None:
        self.write_json(StatsResponse.model_validate(await admin_stats.summary(self.db, **self.range())))


class AdminCaseStatsHandler(StatsBase):
    api = endpoints(get=Operation(
        "Per case in [from, to): openings, revenue, payout, realized and expected RTP from each version's odds; "
        "rtpAlarm when the payout is outside the 99.9 % interval the odds predict", CaseStatsResponse,
        auth="admin", errors=(400,), tags=TAGS, params=range_params()))

    async def get(self) -> None:
        cases = await admin_stats.per_case(self.db, **self.range())
        self.write_json(CaseStatsResponse.model_validate({"cases": cases}))


class AdminTimeseriesHandler(StatsBase):
    api = endpoints(get=Operation(
        "The stats per hour or per day (UTC buckets with any activity, oldest first)", TimeseriesResponse,
        auth="admin", errors=(400,), tags=TAGS,
        params=(Param("bucket", "query", {"type": "string", "enum": list(admin_stats.BUCKET_FORMATS),
                                          "default": "day"}), *range_params())))

    async def get(self) -> None:
        bucket = self.text_arg("bucket", "day")
        series = await admin_stats.timeseries(self.db, bucket=bucket, **self.range())
        self.write_json(TimeseriesResponse.model_validate({"bucket": bucket, "series": series}))


# --- audit ------------------------------------------------------------------------------------


class AdminAuditHandler(AdminHandler):
    api = endpoints(get=Operation(
        "Every admin action, newest first (append-only)", AuditResponse, auth="admin", errors=(400,), tags=TAGS,
        params=(limit_param(), cursor_param(audit.CURSOR_PATTERN,
                                            "nextCursor of the previous page: <epoch millis>_<entry id>")),
    ))

    async def get(self) -> None:
        entries, next_cursor = await audit.list_entries(self.db, limit=self.page_limit(), cursor=self.page_cursor())
        self.write_json(AuditResponse.model_validate(
            {"entries": [audit.public_entry(e) for e in entries], "nextCursor": next_cursor}))


default_handlers = [
    (r"/api/admin/cases/([^/]+)/restore", AdminCaseRestoreHandler),
    (r"/api/admin/cases/([^/]+)/versions", AdminCaseVersionsHandler),
    (r"/api/admin/users", AdminUsersHandler),
    (r"/api/admin/users/([^/]+)", AdminUserHandler),
    (r"/api/admin/users/([^/]+)/ledger", AdminUserLedgerHandler),
    (r"/api/admin/users/([^/]+)/adjustments", AdminAdjustmentHandler),
    (r"/api/admin/users/([^/]+)/suspend", AdminSuspendHandler),
    (r"/api/admin/users/([^/]+)/restore", AdminRestoreUserHandler),
    (r"/api/admin/audit", AdminAuditHandler),
    (r"/api/admin/payments", AdminPaymentsHandler),
    (r"/api/admin/stats", AdminStatsHandler),
    (r"/api/admin/stats/cases", AdminCaseStatsHandler),
    (r"/api/admin/stats/timeseries", AdminTimeseriesHandler),
]
