"""Turning raw JSON bytes into a validated request model, with clear errors."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cyberhub.platform.errors import BadRequest, ValidationFailed
from cyberhub.platform.models import READABLE_NOT_BLANK
from cyberhub.platform.text import READABLE_PATTERN

M = TypeVar("M", bound=BaseModel)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _message(err: Any) -> str:
    # The readable-text pattern is long and says nothing to a person: name the rule instead.
    pattern = err.get("ctx", {}).get("pattern") if err["type"] == "string_pattern_mismatch" else None
    if pattern == READABLE_NOT_BLANK:
        return "String must hold a visible character and no control or bidi-control character"
    if pattern == READABLE_PATTERN:
        return "String must not hold a control or bidi-control character"
    return err["msg"]


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": _message(err)}
        for err in exc.errors(include_url=False)
    ]


def parse_json(raw: bytes, model: type[M]) -> M:
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequest("Request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object", code="invalid_json")
    return validate(data, model)


def validate(data: Any, model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0]
        raise ValidationFailed(f"Invalid field '{first['field']}': {first['message']}", details=details) from None


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as an int; None when absent. ValueError when it
    is not plain ASCII digits ('²'.isdigit() is true, int('²') fails)."""
    if value is None:
        return None
    value = value.strip()
    if not value or not value.isascii() or not value.isdigit():
        raise ValueError("Content-Length must be a non-negative integer")
    return int(value)
