"""structlog configuration: JSON lines in production, a console renderer on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

_SECRET_KEYS = frozenset({"token", "authorization", "secret", "password", "admin_token"})


def _drop_secrets(_: object, __: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    # Defence in depth: a secret passed as a key-value by mistake never reaches the output.
    for key in _SECRET_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def configure(*, log_format: str = "json", level: str = "info") -> None:
    """Configure structlog and the standard library logging it sits on.

    Args:
        log_format: `json` for JSON lines, `console` for a human-readable renderer, `auto` for
            console on a terminal and JSON otherwise.
        level: the minimum level name (`debug`, `info`, `warning`, `error`).
    """
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if log_format == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
