"""Domain errors. The app maps each one to an RFC 9457 problem response in one place."""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://plugyard.dev/problems/"


class DomainError(Exception):
    """An error a client can act on: carries an HTTP status, a stable type slug and a title."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, slug: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if slug is not None:
            self.slug = slug  # type: ignore[misc]
        self.extra = extra

    @property
    def type_uri(self) -> str:
        """The problem `type` URI."""
        return PROBLEM_BASE + self.slug


class NotFound(DomainError):
    """The resource does not exist, or the caller may not know it exists."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    """The request conflicts with stored state (a duplicate name, a claimed host...)."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidInput(DomainError):
    """The request is well-formed but a value is not acceptable."""

    status = 422
    slug = "invalid-input"
    title = "Invalid input"

    def __init__(self, detail: str, *, field: str, slug: str | None = None, **extra: Any) -> None:
        super().__init__(detail, slug=slug, errors=[{"field": field, "message": detail}], **extra)


class Unauthorized(DomainError):
    """No valid credentials."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    """Valid credentials that do not allow this action."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class PayloadTooLarge(DomainError):
    """The request body or an upload exceeds a configured limit."""

    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class Unavailable(DomainError):
    """A dependency (the database, a gateway) cannot be reached right now."""

    status = 503
    slug = "unavailable"
    title = "Service unavailable"
