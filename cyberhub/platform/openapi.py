"""OpenAPI 3.1 document generated from the routes and the pydantic models the
handlers validate and answer with. Each handler class declares `api`: one
`Operation` per HTTP method; nothing here is written by hand per endpoint."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cyberhub.platform.models import ErrorResponse

Auth = Literal["public", "user", "admin", "webhook"]

ERROR_TEXT = {
    400: "Malformed or invalid input",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated but not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict (insufficient balance, already sold, idempotency key in use, …)",
    413: "Body larger than 1 MiB",
    429: "Rate limited; see Retry-After",
    503: "Database unavailable",
}
# Every endpoint can answer these.
COMMON_ERRORS = (405, 413, 429, 503)
# 403 for a user: the account is suspended (account_suspended).
AUTH_ERRORS = {"public": (), "user": (401, 403), "admin": (401, 403), "webhook": (401,)}


@dataclass(frozen=True)
class Param:
    name: str
    location: Literal["query", "header"]
    schema: dict[str, Any]
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Operation:
    summary: str
    response: type[BaseModel] | None  # None: a document that is not one of our models
    request: type[BaseModel] | None = None
    auth: Auth = "public"
    errors: tuple[int, ...] = ()
    status: int = 200
    params: tuple[Param, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)
    media_type: str = "application/json"
    same_shape_statuses: tuple[int, ...] = ()  # non-2xx answers that carry the success model


def endpoints(**operations: Operation) -> Mapping[str, Operation]:
    """A handler's `api`: its operations by lower-case HTTP method (read-only)."""
    return MappingProxyType(operations)


_GROUP = re.compile(r"\([^)]*\)")


def openapi_path(pattern: str) -> str:
    """Tornado route regex -> OpenAPI path template (`([^/]+)` -> `{id}`)."""
    return _GROUP.sub("{id}", pattern.rstrip("$"))


def build(routes: list[tuple], *, title: str = "CyberHub API", version: str = "1.0.0") -> dict[str, Any]:
    operations = [
        (openapi_path(pattern), method, op)
        for pattern, handler, *_ in routes
        for method, op in (getattr(handler, "api", None) or {}).items()
    ]
    models: set[tuple[type[BaseModel], str]] = {(ErrorResponse, "serialization")}
    for _, _, op in operations:
        if op.response:
            models.add((op.response, "serialization"))
        if op.request:
            models.add((op.request, "validation"))
    refs, schema = models_json_schema(sorted(models, key=lambda m: (m[0].__name__, m[1])),
                                      ref_template="#/components/schemas/{model}")
    paths: dict[str, dict] = {}
    for path, method, op in operations:
        paths.setdefault(path, {})[method] = _operation(path, method, op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Case-opening backend. Amounts are integers in minor units (cents)."},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "webhookSignature": {
                    "type": "apiKey", "in": "header", "name": "X-Signature",
                    "description": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>',
                },
            },
        },
    }


def _operation(path: str, method: str, op: Operation, refs: dict) -> dict[str, Any]:
    error_ref = refs[(ErrorResponse, "serialization")]
    errors = sorted({*op.errors, *AUTH_ERRORS[op.auth], *COMMON_ERRORS, *((400,) if op.request else ())})
    success_schema = refs[(op.response, "serialization")] if op.response else {"type": "object"}
    if op.media_type != "application/json":
        success_schema = {"type": "string"}
    responses: dict[str, Any] = {
        str(op.status): {"description": "Success", "content": {op.media_type: {"schema": success_schema}}},
    }
    for status in errors:
        schema = success_schema if status in op.same_shape_statuses else error_ref
        responses[str(status)] = {"description": ERROR_TEXT[status],
                                  "content": {"application/json": {"schema": schema}}}
    result: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        "responses": responses,
    }
    if op.tags:
        result["tags"] = list(op.tags)
    params = [{"name": p.name, "in": p.location, "required": p.required, "schema": p.schema,
               **({"description": p.description} if p.description else {})} for p in op.params]
    if "{id}" in path:
        params.insert(0, {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
    if params:
        result["parameters"] = params
    if op.request:
        result["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": refs[(op.request, "validation")]}}}
    if op.auth in ("user", "admin"):
        result["security"] = [{"bearerAuth": []}]
    elif op.auth == "webhook":
        result["security"] = [{"webhookSignature": []}]
    return result
