"""Limits enforced before work: every API write refuses an oversized body with a 413 problem.

Routes come from the app's route table (the same table as the cross-tenant matrix), so a new
write endpoint is covered without editing this file. The caller is the tenant itself, with
real ids: only the size can refuse the request, and nothing may be stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from plugyard.app import MAX_REQUEST_BODY
from plugyard.settings import Settings
from tests.conftest import ControlPlane
from tests.security.figures import record
from tests.security.test_cross_tenant_matrix import (
    QUERY,
    ROUTES,
    TENANT,
    _a_is_intact,
    _tenant_a,
    app_routes,
    fill,
)

pytestmark = pytest.mark.e2e


def test_every_api_write_refuses_an_oversized_body(
    control_plane: ControlPlane, settings: Settings, admin_token: str, unique: str
) -> None:
    oversized = b'{"name": "' + b"x" * MAX_REQUEST_BODY + b'"}'
    with httpx.Client(base_url=control_plane.url, timeout=60) as http:
        a, values = _tenant_a(http, admin_token, unique)
        calls, failures = 0, []
        for method, path in app_routes(settings):
            if method not in {"POST", "PUT", "PATCH"} or not path.startswith("/v1/"):
                continue
            headers: dict[str, Any] = {"content-type": "application/json"}
            headers.update(
                a.headers if ROUTES[path] == TENANT else {"authorization": f"Bearer {admin_token}"}
            )
            answer = http.request(
                method, fill(path, values), headers=headers, params=QUERY.get(path), content=oversized
            )
            calls += 1
            if answer.status_code not in {401, 413}:
                failures.append(f"{method} {path}: {answer.status_code} {answer.text[:160]}")
            elif answer.status_code == 413 and not answer.headers["content-type"].startswith(
                "application/problem+json"
            ):
                failures.append(f"{method} {path}: 413 without a problem body")
        record("body_size_limit", calls=calls, failures=len(failures))
        assert calls >= 25, calls
        assert not failures, "\n".join(failures)
        _a_is_intact(http, a, values)
