"""Catalogue: GET /api/cases (public) and the admin case endpoints."""

from __future__ import annotations

from cyberhub.admin import cases as admin_cases
from cyberhub.admin.models import AdminCaseListResponse
from cyberhub.catalogue import cache as catalogue_cache
from cyberhub.catalogue import cases as catalogue
from cyberhub.catalogue.models import CaseInput, CaseListResponse, CaseResponse
from cyberhub.platform.models import Envelope
from cyberhub.platform.openapi import Operation, endpoints
from handlers.base import AdminBase, BaseHandler


class CaseListHandler(BaseHandler):
    api = endpoints(get=Operation("Active cases with their items, chances, expected value and RTP",
                                  CaseListResponse, tags=("catalogue",)))
    async def get(self) -> None:
        entry = await self.services.catalogue_cache.entry(self.db)
        self._etag = entry.etag
        self.set_header("Cache-Control", "no-cache")  # may be kept, but revalidated with the ETag
        self.finish(entry.body)  # If-None-Match matching the ETag → 304 without a body (Tornado)

    def compute_etag(self) -> str | None:
        """The ETag computed once per catalogue build, instead of Tornado's hash
        of the body on every 200 GET."""
        return getattr(self, "_etag", None)


class CatalogueAdminBase(AdminBase):
    """Admin endpoints that change the catalogue."""

    async def _changed(self) -> None:
        """After a successful write: every process rebuilds, this one at once."""
        self.services.catalogue_cache.invalidate()
        await catalogue_cache.bump(self.db)
        self.services.catalogue_cache.invalidate()
        await self.notifier.cases_updated()


class AdminCaseCreateHandler(CatalogueAdminBase):
    api = endpoints(post=Operation("Create a case", CaseResponse, request=CaseInput, auth="admin", status=201,
                                   tags=("admin",)),
                    get=Operation("Every case, deleted ones included (active: false)", AdminCaseListResponse,
                                  auth="admin", tags=("admin",)))

    async def get(self) -> None:
        self.write_json(AdminCaseListResponse.model_validate({"cases": await admin_cases.list_all(self.db)}))

    async def post(self) -> None:
        data = self.parse_body(CaseInput)
        case = await catalogue.create_case(self.db, data, admin_id=self.user_id)
        await self._changed()
        await self.audit("case.create", case["_id"], {"version": 1, "name": case["name"], "price": case["price"]})
        self.write_json(CaseResponse(case=catalogue.public_case(case)), 201)


class AdminCaseHandler(CatalogueAdminBase):
    api = endpoints(
        put=Operation("Replace a case (makes a new version)", CaseResponse, request=CaseInput, auth="admin",
                      errors=(404, 409), tags=("admin",)),
        delete=Operation("Hide a case (history and inventory stay)", Envelope, auth="admin", errors=(404,),
                         tags=("admin",)),
    )

    async def put(self, case_id: str) -> None:
        data = self.parse_body(CaseInput)
        case = await catalogue.replace_case(self.db, case_id, data, admin_id=self.user_id)
        await self._changed()
        await self.audit("case.update", case_id, {"version": case["version"], "name": case["name"],
                                                   "price": case["price"]})
        self.write_json(CaseResponse(case=catalogue.public_case(case)))

    async def delete(self, case_id: str) -> None:
        await catalogue.delete_case(self.db, case_id)
        await self._changed()
        await self.audit("case.delete", case_id)
        self.write_json(Envelope())


default_handlers = [
    (r"/api/cases", CaseListHandler),
    (r"/api/admin/cases", AdminCaseCreateHandler),
    (r"/api/admin/cases/([^/]+)", AdminCaseHandler),
]
