"""Wire shapes every domain builds on: the strict request base, the public
base, the success and error envelopes, and the field rules shared by all
(whole numbers, white space, limits). camelCase on the wire, as the frontend expects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

from cyberhub.platform.text import FORBIDDEN_CHARACTERS

MAX_PRICE = 100_000_000_000  # minor units; keeps every sum far inside int64
MAX_WEIGHT = 1_000_000_000
MAX_JSON_INT = 2**53 - 1  # the largest integer every JSON parser reads exactly
MAX_ITEMS = 100



def _integral_float_as_int(value: object) -> object:
    """JSON Schema counts 2826999.0 as an integer, and so does the OpenAPI
    document, so such a number is taken as the integer it is. Anything else
    (1.5, "7", true) still meets the strict int check and is refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a request body (amounts, prices, weights in minor units).
WholeNumber = Annotated[int, BeforeValidator(_integral_float_as_int)]

# Names are trimmed of surrounding white space; they must hold something else.
# "White space" is ECMAScript's \s, written out, so that this server, the
# OpenAPI document's pattern and every client's regex engine agree on it
# (Python's str.strip() would also strip \x1c-\x1f and \x85).
WHITE_SPACE = ("\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
               "\u2028\u2029\u202f\u205f\u3000\ufeff")
NOT_BLANK = f"[^{WHITE_SPACE}]"


def _trim(value: str) -> str:
    return value.strip(WHITE_SPACE)


# Free text people read (cyberhub/platform/text.py): no control or bidi-control
# character anywhere, and at least one character that is neither that nor
# white space. One anchored pattern, valid in pydantic's (Rust) regex engine,
# Python's and ECMAScript's alike, so the OpenAPI document carries the same
# rule and schemathesis generates from it; a refusal is 400 validation_error.
READABLE_NOT_BLANK = f"^[^{FORBIDDEN_CHARACTERS}]*[^{FORBIDDEN_CHARACTERS}{WHITE_SPACE}][^{FORBIDDEN_CHARACTERS}]*$"


def readable(max_length: int, min_length: int = 1) -> object:
    """Free text an operator or another player reads (reasons, names, chat):
    min_length..max_length characters, at least one not white space, none of
    them a control or bidi-control character. The shared type for every such
    field, so all features refuse the same characters."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length,
                                            pattern=READABLE_NOT_BLANK)]


def label(max_length: int) -> object:
    """A name-like string: 1..max_length characters as sent (so the document's
    maxLength holds), readable (see `readable`), stored trimmed."""
    return Annotated[readable(max_length), AfterValidator(_trim)]

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RequestModel(BaseModel):
    """Base of every request body: camelCase only, unknown fields refused, no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, validate_by_name=False)


class PublicModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True)


class Envelope(PublicModel):
    success: Literal[True] = True


class ErrorDetail(PublicModel):
    field: str
    message: str


class ErrorResponse(PublicModel):
    success: Literal[False] = False
    error: str
    code: str
    details: list[ErrorDetail] | None = None


class HealthResponse(PublicModel):
    status: Literal["ok", "degraded"]
    websocket: str
    # The Redis relay between processes: "local" without REDIS_URL, "up", or
    # "down" while Redis is unreachable (not a reason for 503: it is optional).
    relay: Literal["local", "up", "down"]
    clients: int
    timestamp: str
