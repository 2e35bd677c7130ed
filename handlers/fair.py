"""Provably fair: GET /api/fair, POST /api/fair/rotate, POST /api/fair/client-seed,
GET /api/fair/verify (public)."""

from __future__ import annotations

import re

from cyberhub.catalogue import cases as catalogue
from cyberhub.catalogue import fairness, seeds
from cyberhub.catalogue.models import (
    ClientSeedRequest,
    FairHistoryResponse,
    FairResponse,
    FairRotateResponse,
    VerifyResponse,
)
from cyberhub.platform.errors import BadRequest, ValidationFailed
from cyberhub.platform.openapi import Operation, Param, endpoints
from handlers.base import BaseHandler

SEED_PATTERN = re.compile(r"^[0-9a-f]{64}$")
DIGITS = re.compile(r"[0-9]{1,15}")
MAX_QUERY_INT = 10**15 - 1  # what DIGITS admits; the OpenAPI document says the same
CLIENT_SEED_PATTERN = re.compile(r"^[\x20-\x7e]{1,64}$")


class FairHandler(BaseHandler):
    required_role = "user"
    api = endpoints(get=Operation("Current seed commitment and next nonce", FairResponse, auth="user", tags=("fair",)))

    async def get(self) -> None:
        self.write_json(FairResponse(fair=seeds.public(await seeds.current(self.db, self.user_id))))


class HistoryHandler(BaseHandler):
    required_role = "user"
    api = endpoints(get=Operation("Revealed seed pairs, newest first (last 100)", FairHistoryResponse,
                                  auth="user", tags=("fair",)))

    async def get(self) -> None:
        self.write_json(FairHistoryResponse(seeds=await seeds.history(self.db, self.user_id)))


class RotateHandler(BaseHandler):
    required_role = "user"
    rate_limits = (("fair_per_user", "user"),)
    api = endpoints(
        post=Operation(
            "Reveal the server seed and commit a new one",
            FairRotateResponse,
            auth="user",
            errors=(400,),
            tags=("fair",),
        )
    )

    async def post(self) -> None:
        if self.raw_body.strip():
            raise BadRequest("This endpoint takes no body", code="unexpected_body")
        previous, fair = await seeds.rotate(self.db, user_id=self.user_id)
        self.write_json(FairRotateResponse(previous=previous, fair=fair))


class ClientSeedHandler(BaseHandler):
    required_role = "user"
    rate_limits = (("fair_per_user", "user"),)
    api = endpoints(
        post=Operation(
            "Set the client seed (starts a new seed pair, like rotate)",
            FairRotateResponse,
            request=ClientSeedRequest,
            auth="user",
            tags=("fair",),
        )
    )

    async def post(self) -> None:
        body = self.parse_body(ClientSeedRequest)
        previous, fair = await seeds.rotate(self.db, user_id=self.user_id, client_seed=body.client_seed)
        self.write_json(FairRotateResponse(previous=previous, fair=fair))


def invalid(field: str, message: str) -> ValidationFailed:
    """A query parameter error, shaped like a body validation error."""
    return ValidationFailed(f"Invalid field '{field}': {message}", details=[{"field": field, "message": message}])


class VerifyHandler(BaseHandler):
    rate_limits = (("verify_per_ip", "ip"),)
    api = endpoints(
        get=Operation(
            "Recompute a past draw",
            VerifyResponse,
            errors=(400, 404),
            tags=("fair",),
            params=(
                Param("serverSeed", "query", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, required=True),
                Param("clientSeed", "query", {"type": "string", "pattern": "^[ -~]{1,64}$"}, required=True),
                Param("nonce", "query", {"type": "integer", "minimum": 0, "maximum": MAX_QUERY_INT}, required=True),
                Param("caseId", "query", {"type": "string"}, required=True),
                Param("version", "query", {"type": "integer", "minimum": 1, "maximum": MAX_QUERY_INT},
                      required=True),
            ),
        )
    )

    def _arg(self, name: str) -> str:
        # strip=False: a client seed may begin or end with spaces, and verify
        # must recompute with exactly the seed that was used.
        value = self.get_query_argument(name, None, strip=False)
        if value is None:
            raise invalid(name, "Field required")
        return value

    def _int_arg(self, name: str) -> int:
        value = self._arg(name)
        if not DIGITS.fullmatch(value):
            raise invalid(name, "must be a non-negative integer")
        return int(value)

    def _seed_pair(self) -> tuple[str, str, int]:
        """A verify request's serverSeed, clientSeed and nonce, each checked."""
        server_seed, client_seed = self._arg("serverSeed"), self._arg("clientSeed")
        if not SEED_PATTERN.match(server_seed):
            raise invalid("serverSeed", "must be 64 lowercase hex characters")
        if not CLIENT_SEED_PATTERN.match(client_seed):
            raise invalid("clientSeed", "must be 1–64 printable ASCII characters")
        return server_seed, client_seed, self._int_arg("nonce")

    async def get(self) -> None:
        server_seed, client_seed, nonce = self._seed_pair()
        version = self._int_arg("version")
        if version < 1:
            raise invalid("version", "must be a positive integer")
        case_version = await catalogue.get_version(self.db, self._arg("caseId"), version)
        drawn = fairness.draw(server_seed, client_seed, nonce, [i["weight"] for i in case_version["items"]])
        item = catalogue.public_case(case_version).items[drawn.index]
        self.write_json(VerifyResponse(roll=drawn.roll, ticket=drawn.ticket, item=item))


default_handlers = [
    (r"/api/fair", FairHandler),
    (r"/api/fair/rotate", RotateHandler),
    (r"/api/fair/history", HistoryHandler),
    (r"/api/fair/client-seed", ClientSeedHandler),
    (r"/api/fair/verify", VerifyHandler),
]
