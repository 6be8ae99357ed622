"""The served OpenAPI document states the input rules the API applies (plugyard/openapi.py)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from plugyard.app import create_app
from plugyard.namespaces.schemas import NamespaceCreate
from plugyard.settings import from_env
from tests.security.test_fuzz_stateful import unclosed_request_bodies


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(from_env({"DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused"}))
    return app.openapi_schema.to_schema()


def test_every_request_body_object_is_closed(document: dict[str, Any]) -> None:
    assert unclosed_request_bodies(document) == []


def test_a_closed_schema_matches_a_struct_that_refuses_unknown_fields(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["NamespaceCreate"]
    assert schema["additionalProperties"] is False
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"name": "prod", "surprise": 1}', type=NamespaceCreate)


def test_output_structs_stay_open(document: dict[str, Any]) -> None:
    # Responses may gain fields over time; clients must not be told otherwise.
    assert "additionalProperties" not in document["components"]["schemas"]["TokenCreated"]
