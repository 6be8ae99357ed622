"""One place that turns every exception into an RFC 9457 problem response."""

from __future__ import annotations

import errno
import re
from typing import Any

import asyncpg
import structlog
from litestar import Request, Response
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from plugyard.errors import PROBLEM_BASE, DomainError, Unavailable

log = structlog.get_logger(__name__)

_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


def _problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status, type_=PROBLEM_BASE + slug, title=title, detail=detail, extra=extra or None
    )


def _from_domain(exc: DomainError) -> ProblemDetailsException:
    return _problem(exc.status, exc.slug, exc.title, exc.detail, **exc.extra)


_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$\.?(?P<path>.*)`$")
_UNKNOWN_FIELD = re.compile(r"unknown field `(?P<field>[^`]*)`")


def _field_error(item: dict[str, Any]) -> dict[str, str]:
    """Name the offending field: msgspec puts the JSON path in the message, Litestar only the source."""
    message = str(item.get("message", ""))
    if located := _AT_PATH.match(message):
        return {"field": located["path"] or "body", "message": located["message"]}
    if unknown := _UNKNOWN_FIELD.search(message):
        return {"field": unknown["field"], "message": message}
    key = str(item.get("key") or "")
    return {"field": "body" if key in {"", "data"} else key, "message": message}


def _from_validation(exc: ValidationException) -> ProblemDetailsException:
    items = exc.extra if isinstance(exc.extra, list) else []
    errors = [_field_error(item) for item in items if isinstance(item, dict)]
    if not errors or all(e["field"] == "body" for e in errors):
        # The body is JSON but not an object of the expected shape at all.
        detail = errors[0]["message"] if errors else str(exc.detail)
        return _problem(400, "malformed-body", "Malformed request body", detail, errors=errors)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _problem(422, "invalid-input", "Invalid input", detail, errors=errors)


def _from_http(exc: HTTPException) -> ProblemDetailsException:
    if type(exc) is ClientException and exc.status_code == 400:
        # Litestar raises a bare ClientException when the body cannot be decoded at all.
        return _problem(
            400, "malformed-body", "Malformed request body", f"the body is not valid JSON: {exc.detail}"
        )
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    title = slug.replace("-", " ").capitalize()
    return ProblemDetailsException(
        status_code=exc.status_code,
        type_=PROBLEM_BASE + slug,
        title=title,
        detail=str(exc.detail),
        headers=exc.headers,
    )


def _database_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("database_unavailable", error=type(exc).__name__)
    problem = _from_domain(
        Unavailable("the database is unreachable; retry shortly", slug="database-unavailable")
    )
    problem.headers = {"Retry-After": "1"}
    return problem.to_response(request)


def _os_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # A Unix-socket database that is down (the embedded server, a local socket URL) raises a
    # bare ENOENT/ECONNREFUSED with no file name; file errors name their file and stay 500s.
    # Found by tests/faults/test_database_restart.py.
    if isinstance(exc, OSError) and exc.filename is None and exc.errno in _SOCKET_DOWN:
        return _database_down(request, exc)
    return _unexpected(request, exc)


_SOCKET_DOWN = {errno.ENOENT, errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE}


def _unstorable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # A value the schema allows but PostgreSQL cannot hold (a NUL character in text, an integer
    # beyond int4): the request's fault, found by tests/security/test_fuzz_api.py.
    log.warning("request_value_rejected", error=type(exc).__name__)
    problem = _problem(
        422,
        "invalid-input",
        "Invalid input",
        "a value in the request cannot be stored (NUL characters and integers beyond 2147483647 are refused)",
    )
    return problem.to_response(request)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("request_failed")
    problem = _problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal server error",
        "an unexpected error occurred; it has been logged with this request's id",
    )
    return problem.to_response(request)


def plugin() -> ProblemDetailsPlugin:
    """The Litestar plugin mapping domain and HTTP exceptions to problems."""
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                DomainError: _from_domain,
                ValidationException: _from_validation,
                HTTPException: _from_http,
            }
        )
    )


def handlers() -> dict[int | type[Exception], Any]:
    """Exception handlers for what is not an HTTP error: database outages and bugs."""
    return {
        asyncpg.PostgresConnectionError: _database_down,
        asyncpg.InterfaceError: _database_down,
        asyncpg.CannotConnectNowError: _database_down,
        asyncpg.TooManyConnectionsError: _database_down,
        # A connection cut mid-query can leave asyncpg's protocol in a state it refuses to
        # leave ("cannot switch to state ..."): seen while PostgreSQL restarts.
        asyncpg.InternalClientError: _database_down,
        ConnectionError: _database_down,
        TimeoutError: _database_down,
        asyncpg.DataError: _unstorable,
        OSError: _os_error,
        Exception: _unexpected,
    }
