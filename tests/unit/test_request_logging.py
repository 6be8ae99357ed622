"""The request context of log lines (plugyard.middleware.request_logging, plugyard.log)."""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar.types import Message, Scope
from structlog.testing import capture_logs

from plugyard import log
from plugyard.middleware import request_logging

inner = structlog.get_logger("test.inner")


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "PUT", "path": path, "headers": headers}  # type: ignore[typeddict-item]


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _app(scope: Scope, receive: Any, send: Any) -> None:
    inner.info("inside_request", path="/own/value")
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_every_line_of_a_request_carries_its_context_and_none_outlives_it() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with capture_logs(processors=[log._merge_request]) as lines:
        inner.info("before_request")
        await request_logging(_app)(_scope("/v1/tenants/acme/namespaces/prod", []), _receive, send)
        inner.info("after_request")

    before, inside, completed, after = lines
    assert set(before) == {"event", "log_level"}
    request_id = inside["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    # The line's own key-values win over the request's.
    assert inside["path"] == "/own/value"
    assert (inside["method"], inside["tenant"]) == ("PUT", "acme")
    assert completed["event"] == "request_completed"
    assert completed["status"] == 204
    assert completed["request_id"] == request_id
    assert completed["path"] == "/v1/tenants/acme/namespaces/prod"
    assert set(after) == {"event", "log_level"}
    assert (b"x-request-id", request_id.encode()) in sent[0]["headers"]


async def test_a_given_request_id_is_kept_and_fresh_ones_differ() -> None:
    ids: list[str] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            ids.append(dict(message["headers"])[b"x-request-id"].decode())

    app = request_logging(_app)
    with capture_logs(processors=[log._merge_request]) as lines:
        await app(_scope("/healthz", [(b"x-request-id", b"given-id-0001")]), _receive, send)
        await app(_scope("/healthz", []), _receive, send)
        await app(_scope("/healthz", []), _receive, send)
    assert ids[0] == "given-id-0001"
    assert lines[0]["request_id"] == "given-id-0001"
    assert lines[0]["tenant"] is None
    assert len(set(ids)) == 3


def test_bound_values_add_up_and_reset_restores_the_previous_ones() -> None:
    with capture_logs(processors=[log._merge_request]) as lines:
        outer = log.bind_request(request_id="r1", tenant="t1")
        nested = log.bind_request(plugin="p1")
        inner.info("nested")
        log.reset_request(nested)
        inner.info("outer")
        log.reset_request(outer)
        inner.info("none")
    assert {k: lines[0][k] for k in ("request_id", "tenant", "plugin")} == {
        "request_id": "r1",
        "tenant": "t1",
        "plugin": "p1",
    }
    assert "plugin" not in lines[1]
    assert lines[1]["request_id"] == "r1"
    assert "request_id" not in lines[2]
