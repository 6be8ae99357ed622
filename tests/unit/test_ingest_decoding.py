"""Decoding a signed ingest batch: row versions must be hex, though checked once per distinct value."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest

from plugyard import signing
from plugyard.errors import InvalidInput
from plugyard.metrics.schemas import INGEST_PATH, N_BUCKETS
from plugyard.metrics.service import decode_batch

SECRET = "s" * 32


def _body(versions: list[str]) -> bytes:
    rows = [
        {"tenant": "t", "namespace": "n", "plugin": "p", "version": v, "variant": "v", "minute": 60,
         "requests": 1, "latency": [1] + [0] * (N_BUCKETS - 1)}
        for v in versions
    ]  # fmt: skip
    batch = {"batch_id": str(uuid.uuid4()), "gateway": "g", "sealed_at": int(time.time() * 1000), "rows": rows,
             "logs": []}  # fmt: skip
    return msgspec.json.encode(batch)


def _decode(body: bytes) -> object:
    headers = signing.sign(SECRET, method="POST", path=INGEST_PATH, body=body)
    return decode_batch(SECRET, headers, INGEST_PATH, body)


def test_hex_versions_of_any_length_up_to_64_decode() -> None:
    batch = _decode(_body(["ab" * 32, "0", "ab" * 32, "f00d"]))
    assert [r.version for r in batch.rows] == ["ab" * 32, "0", "ab" * 32, "f00d"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["XYZ", "AB", "ab" * 32 + "a", "", "g0", "ab cd"])
def test_a_row_version_that_is_not_hex_is_refused_naming_the_first_row_with_it(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _decode(_body(["ab", "cd", bad, "ef", bad]))
    assert caught.value.slug == "invalid-batch"
    assert caught.value.extra["errors"][0]["field"] == "$.rows[2].version"
