"""Errors as OpenAI shapes them: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

Every failure a client can cause or meet is one :class:`ApiError`, raised anywhere below a route and turned
into a response in one place (:func:`error_response`), so clients (the ``openai`` SDK included) map it to
the exception they already know: 400 ``BadRequestError``, 401 ``AuthenticationError``, 429
``RateLimitError`` (with ``Retry-After``), 5xx ``InternalServerError``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from thinkloop.runtime.trace import redact

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
}


class ApiError(Exception):
    """A failure to report to the client as an OpenAI-shaped error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        scrub: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.scrub = scrub
        """False for the server's own words (the 401 hint names the header, which the redactor would hide)."""

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": scrub(self.message) if self.scrub else self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None or math.isnan(self.retry_after):
            return {}
        # An upstream's "Retry-After: inf" is passed on as a long wait, not an overflow.
        return {"retry-after": str(max(1, round(min(self.retry_after, MAX_RETRY_AFTER))))}


MAX_RETRY_AFTER = 3600.0
"""The longest ``Retry-After`` passed on to a client, in seconds."""


def scrub(text: str) -> str:
    """Text safe to show a client or a log: keys redacted, and credentials in URLs (``http://user:pass@``)."""
    return redact(text)


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def error_response(error: ApiError) -> JSONResponse:
    from starlette.responses import JSONResponse  # here: `thinkloop --help` reads this module's neighbours

    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


def as_api_error(exc: BaseException) -> ApiError:
    """The first :class:`ApiError` inside an exception (group); anything else is a logged 500."""
    found = _find(exc)
    if found is not None:
        return found
    logging.getLogger("thinkloop.serve").error("internal error: %s", scrub(f"{type(exc).__name__}: {exc}"))
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", code="internal_error")


def _find(exc: BaseException) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner)
            if found is not None:
                return found
    return None
