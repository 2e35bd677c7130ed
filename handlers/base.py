"""BaseHandler: JSON in and out, authentication, CORS, and the one write_error.

Bodies are streamed so that one over 1 MiB is counted and dropped rather than
buffered, then refused with 413 once it has been read (closing early would
make many clients lose the response).
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import tornado.web
from pydantic import BaseModel

from cyberhub.accounts import users as accounts
from cyberhub.accounts.security import bearer_token
from cyberhub.admin import audit
from cyberhub.platform.errors import (
    AppError,
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    ShuttingDown,
    Unauthorized,
    error_for_status,
)
from cyberhub.platform.ids import request_id
from cyberhub.platform.openapi import Param
from cyberhub.platform.validation import declared_length, parse_json
from cyberhub.store.db import PyMongoError, is_unavailable_error

if TYPE_CHECKING:
    from handlers.services import Services

log = logging.getLogger("cyberhub.http")

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PAGE, MAX_PAGE = 50, 100  # ?limit= of every paged list
PAGE_LIMIT = re.compile(r"[0-9]{1,6}")


def limit_param() -> Param:
    return Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE})


def cursor_param(pattern: str, description: str = "nextCursor of the previous page") -> Param:
    return Param("cursor", "query", {"type": "string", "pattern": pattern}, description=description)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
M = TypeVar("M", bound=BaseModel)


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    # None: public; "user": any logged-in user; "admin": admins only.
    required_role: ClassVar[str | None] = None
    # (rule in settings' RATE_LIMIT_*, "user" | "ip"): counted before the handler runs.
    rate_limits: ClassVar[tuple[tuple[str, str], ...]] = ()

    def initialize(self) -> None:
        self._chunks: list[bytes] = []
        self._received = 0
        self._too_large = False
        self._refusal: BaseException | None = None
        self._in_flight = False  # counted in services.inflight (graceful shutdown waits for it)
        incoming = self.request.headers.get("X-Request-Id", "")
        self.request_id = incoming if incoming and REQUEST_ID.match(incoming) else request_id()
        self.set_header("X-Request-Id", self.request_id)
        self.user: dict | None = None

    # --- services --------------------------------------------------------------
    @property
    def services(self) -> Services:
        return self.application.settings["services"]

    @property
    def db(self) -> Any:
        return self.services.db

    @property
    def notifier(self) -> Any:
        return self.services.notifier

    # --- request lifecycle -----------------------------------------------------
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        if hasattr(self, "request_id"):
            self.set_header("X-Request-Id", self.request_id)
        origin = self.request.headers.get("Origin")
        if origin and self.services.cors_allows(origin):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
            self.set_header("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
            self.set_header("Vary", "Origin")

    async def prepare(self) -> None:
        self.services.inflight.enter(self)
        self._in_flight = True
        try:
            declared = declared_length(self.request.headers.get("Content-Length"))
        except ValueError as exc:
            # Answered at once: a body whose length cannot be read is never read.
            raise BadRequest(str(exc), code="invalid_content_length") from None
        if declared is not None and declared > MAX_BODY_BYTES:
            self._too_large = True
            self.refuse_after_body(PayloadTooLarge())
        elif self.request.method != "OPTIONS":
            try:
                if self.required_role:
                    await self._authenticate()
                await self._count_rate_limits()
            except Exception as exc:
                self.refuse_after_body(exc)

    def refuse_after_body(self, exc: BaseException) -> None:
        """Answer with `exc` once the body has been read, instead of the handler method.

        Raised from prepare(), the error would be written while the client is
        still sending its body; Tornado then closes the connection with unread
        data, and many clients get a reset instead of the 401/403/404.
        A body over the limit is refused (413) whatever else is wrong, and
        whether or not the handler would have read it.
        """
        if isinstance(self._refusal, PayloadTooLarge):
            return
        self._refusal = exc

        async def refuse(*args: Any) -> None:
            raise exc

        setattr(self, self.request.method.lower(), refuse)

    def on_finish(self) -> None:
        self._leave()
        self._release_refusal()

    def _release_refusal(self) -> None:
        """A refusal's traceback holds the frames that hold this handler, which
        holds the refusal (and its `refuse` method's closure does too): a cycle of
        40–70 objects per refused request (404, a bad token) that only the cyclic
        collector frees — and never, if a `gc.freeze()` caught the request in
        flight (cyberhub/realtime/loopmonitor.py). Cut once the request is over."""
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            refusal.__traceback__ = None
            self.__dict__.pop(self.request.method.lower(), None)

    def on_connection_close(self) -> None:
        # A client that goes away before its body is complete: the handler method
        # never runs, and neither does on_finish. (Tornado 6.6 resolves the
        # streamed body's future when the body ends; a request whose body was
        # complete still runs to its end, and on_finish counts it then, so
        # shutdown keeps waiting for it.)
        body = getattr(self.request, "_body_future", None)
        body_cut_off = body is not None and not body.done()
        super().on_connection_close()
        if body_cut_off:
            self._leave()
            self._release_refusal()

    def _leave(self) -> None:
        """The request's end, counted once whichever of the two ends it."""
        if self._in_flight:
            self._in_flight = False
            self.services.inflight.leave(self)

    def refuse_if_unstarted(self) -> bool:
        """At shutdown: a request whose body has not fully arrived has not
        started (its handler method runs only once the body is complete), so it
        is answered 503 at once, with the connection closed, instead of keeping
        shutdown waiting for a client that stalls mid-body. True if refused."""
        body = getattr(self.request, "_body_future", None)
        if self._finished or body is None or body.done():
            return False
        refusal = ShuttingDown()
        self.send_error(refusal.status, exc_info=(type(refusal), refusal, None))
        return True

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > MAX_BODY_BYTES:
            if not self._too_large:
                self.refuse_after_body(PayloadTooLarge())
            self._too_large = True
            self._chunks.clear()
        elif not self._too_large:
            self._chunks.append(chunk)

    async def options(self, *args: Any) -> None:
        """CORS preflight."""
        self.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, X-Request-Id")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    async def _count_rate_limits(self) -> None:
        for rule, scope in self.rate_limits:
            key = self.user_id if scope == "user" else (self.request.remote_ip or "unknown")
            await self.services.limiter.hit(rule, key)  # counts its own refusals (/metrics)

    # --- auth ------------------------------------------------------------------
    async def _authenticate(self) -> None:
        token = bearer_token(self.request.headers.get("Authorization"))
        if token is None:
            raise Unauthorized("Missing bearer token", code="missing_token")
        user = await accounts.user_for_token(self.db, self.services.tokens, token)
        if self.required_role == "admin" and user["role"] != "admin":
            raise Forbidden("Admin role required", code="admin_required")
        await accounts.touch_active(self.db, user)
        self.user = user
        self.current_user = user

    # --- paged lists ---------------------------------------------------------------
    def page_limit(self) -> int:
        arg = self.get_query_argument("limit", str(DEFAULT_PAGE))
        if not PAGE_LIMIT.fullmatch(arg) or not 1 <= int(arg) <= MAX_PAGE:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE}", code="invalid_limit")
        return int(arg)

    def page_cursor(self) -> str | None:
        # Unstripped: the cursor is exactly what the pattern in the document describes.
        return self.get_query_argument("cursor", None, strip=False)

    @property
    def user_id(self) -> str:
        assert self.user is not None
        return self.user["_id"]

    # --- bodies ----------------------------------------------------------------
    @property
    def raw_body(self) -> bytes:
        if self._too_large:
            raise PayloadTooLarge()
        return b"".join(self._chunks)

    def parse_body(self, model: type[M]) -> M:
        return parse_json(self.raw_body, model)

    def write_json(self, payload: BaseModel | dict, status: int = 200) -> None:
        if isinstance(payload, BaseModel):
            text = payload.model_dump_json(by_alias=True)
        else:
            text = json.dumps(payload, separators=(",", ":"), default=str)
        self.set_status(status)
        self.finish(text)

    # --- errors ----------------------------------------------------------------
    def _as_app_error(self, exc: BaseException | None, status_code: int) -> AppError:
        if isinstance(exc, AppError):
            return exc
        if isinstance(exc, tornado.web.HTTPError):
            return error_for_status(exc.status_code, exc.log_message if exc.status_code < 500 else None)
        if exc is not None and is_unavailable_error(exc):
            return ServiceUnavailable()
        return error_for_status(status_code) if status_code < 500 else AppError()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        err = self._as_app_error(exc, status_code)
        self.set_status(err.status)
        for name, value in err.headers.items():
            self.set_header(name, value)
        if err.status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.finish(json.dumps(err.envelope()))

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this route serves (for the Allow header a 405 must carry)."""
        base = tornado.web.RequestHandler
        served = [m for m in ("GET", "POST", "PUT", "DELETE", "PATCH")
                  if getattr(cls, m.lower()) is not getattr(base, m.lower())]
        return [*served, "OPTIONS"]

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, AppError | tornado.web.HTTPError):
            return  # expected outcomes: the access line records them
        if value is not None and is_unavailable_error(value):
            log.warning("Database unavailable during %s %s: %s", self.request.method, self.request.path, value)
            return
        if isinstance(value, PyMongoError):
            log.error("Database error during %s %s: %r", self.request.method, self.request.path, value)
            return
        log.error("Unhandled error in %s %s", self.request.method, self.request.path, exc_info=(typ, value, tb))


class NotFoundHandler(BaseHandler):
    """Any path no route matches."""

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != "OPTIONS":
            self.refuse_after_body(
                NotFound(f"No such endpoint: {self.request.method} {self.request.path}", code="route_not_found")
            )


class AdminBase(BaseHandler):
    """Admin-only endpoints (403 admin_required otherwise), with the audit trail."""

    required_role = "admin"

    async def audit(self, action: str, target: str, details: dict | None = None) -> None:
        """The admin audit trail (GET /api/admin/audit), after the change succeeded."""
        await audit.append(self.db, admin_id=self.user_id, action=action, target=target, details=details)
