"""Application errors: each carries its HTTP status, a stable machine code and
a human-readable message. No Tornado imports: domain code raises these."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 500
    code = "internal_error"
    message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "error": self.message, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(AppError):
    status, code, message = 400, "bad_request", "Bad request"


class ValidationFailed(BadRequest):
    code, message = "validation_error", "Invalid request"


class Unauthorized(AppError):
    status, code, message = 401, "unauthorized", "Authentication required"


class Forbidden(AppError):
    status, code, message = 403, "forbidden", "You are not allowed to do this"


class NotFound(AppError):
    status, code, message = 404, "not_found", "Not found"


class MethodNotAllowed(AppError):
    status, code, message = 405, "method_not_allowed", "Method not allowed"


class Conflict(AppError):
    status, code, message = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, code, message = 413, "payload_too_large", "Request body is larger than 1 MiB"


class RateLimited(AppError):
    status, code, message = 429, "rate_limited", "Too many requests"


class ServiceUnavailable(AppError):
    status, code, message = 503, "database_unavailable", "Database unavailable, try again later"


class ShuttingDown(AppError):
    """A request whose body had not arrived when shutdown began: never started, safe to retry."""

    status, code, message = 503, "shutting_down", "Server is shutting down; retry (on another instance)"

    def __init__(self) -> None:
        super().__init__(headers={"Connection": "close", "Retry-After": "1"})


STATUS_ERRORS: dict[int, type[AppError]] = {
    cls.status: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict,
                PayloadTooLarge, RateLimited, ServiceUnavailable)
}


def error_for_status(status: int, message: str | None = None) -> AppError:
    """The AppError matching a bare HTTP status (used for Tornado's own errors)."""
    cls = STATUS_ERRORS.get(status)
    if cls is None:
        err = AppError(message)
        err.status = status
        return err
    return cls(message)
