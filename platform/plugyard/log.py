"""structlog configuration: JSON lines in production, a console renderer on a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any

import msgspec
import structlog

_SECRET_KEYS = frozenset({"token", "authorization", "secret", "password", "admin_token"})
# Values msgspec cannot encode are logged as their repr, as structlog's own JSON fallback does.
_JSON = msgspec.json.Encoder(enc_hook=repr)
# The key-values of the request being served (middleware.request_logging binds them), added to
# every line logged while it runs. One context variable holding the whole mapping, instead of
# structlog.contextvars (one variable per key, which is not in the processor chain: use
# `bind_request`): binding, clearing and merging those took ~5 % of the instructions of an
# authenticated GET (docs/benchmarks.md, "Profiling notes: control plane, third pass").
_REQUEST: ContextVar[Mapping[str, Any]] = ContextVar("plugyard_request", default={})  # noqa: B039 - never mutated


def bind_request(**values: Any) -> Token[Mapping[str, Any]]:
    """Add `values` to every line logged in the current context until `reset_request(token)`."""
    return _REQUEST.set({**_REQUEST.get(), **values})


def reset_request(token: Token[Mapping[str, Any]]) -> None:
    """Forget what the `bind_request` call that returned `token` bound."""
    _REQUEST.reset(token)


def _merge_request(_: object, __: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    # The line's own key-values win, as with structlog.contextvars.merge_contextvars.
    for key, value in _REQUEST.get().items():
        event_dict.setdefault(key, value)
    return event_dict


def _json_line(event_dict: Any, **_: Any) -> bytes:
    # msgspec instead of the standard library's json: every request logs a line, and this
    # renders it in a third of the time (docs/benchmarks.md, "Profiling notes"). `indent=0`
    # keeps the standard library's spacing (`"key": value, ...`), so the lines look as before.
    return msgspec.json.format(_JSON.encode(event_dict), indent=0)


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
    binary = getattr(sys.stderr, "buffer", None)
    renderer: structlog.typing.Processor
    factory: Any
    if log_format == "console":
        renderer, factory = structlog.dev.ConsoleRenderer(), structlog.PrintLoggerFactory(file=sys.stderr)
    elif binary is None:  # a text-only stderr (some test runners)
        renderer, factory = structlog.processors.JSONRenderer(), structlog.PrintLoggerFactory(file=sys.stderr)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
        factory = structlog.BytesLoggerFactory(file=binary)
    structlog.configure(
        processors=[
            _merge_request,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
