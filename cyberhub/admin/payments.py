"""Payment deliveries for the back office: "did payment X arrive, and what
became of it?" Newest first, filtered by paymentId, userId and provider
status (exact), paged by a plain-text cursor."""

from __future__ import annotations

from cyberhub.money import webhook
from cyberhub.platform import pages
from cyberhub.platform.errors import BadRequest
from cyberhub.platform.ids import as_utc
from cyberhub.store.db import Database

FILTERS = {"paymentId": 128, "userId": 128, "status": 32}  # query parameter → max length


async def list_deliveries(db: Database, *, filters: dict[str, str], limit: int, cursor: str | None
                          ) -> tuple[list[dict], str | None]:
    query: dict = {}
    for name, value in filters.items():
        if len(value) > FILTERS[name]:
            raise BadRequest(f"{name} is at most {FILTERS[name]} characters", code="invalid_filter")
        if value:
            query[name] = value
    return await pages.newest_first(db.payment_deliveries, query, field="receivedAt", limit=limit, cursor=cursor)


def public_delivery(doc: dict) -> dict:
    return {"id": doc["_id"], "paymentId": doc.get("paymentId"), "userId": doc.get("userId"),
            "amount": doc.get("amount"), "currency": doc.get("currency"), "status": doc.get("status"),
            "outcome": webhook.public_outcome(doc.get("outcome", "processing")),
            "receivedAt": as_utc(doc["receivedAt"]), "reversedAmount": doc.get("reversedAmount"),
            "shortfall": doc.get("shortfall")}
