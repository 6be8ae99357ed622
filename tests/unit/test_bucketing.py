"""The control plane's bucketing against the vectors the gateway's bucketing also passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugyard.experiments.bucketing import (
    Assignment,
    BucketConfig,
    Exclusion,
    assign,
    bucket_ranges,
    fnv1a32,
    hash_value,
    normalise,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "bucketing.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("seed", "value", "version", "expected"), VECTORS["growthbook"]["hash"])
def test_growthbook_hash_cases(seed: str, value: str, version: int, expected: float) -> None:
    assert hash_value(seed, value, version) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("count", "coverage", "weights", "expected"), VECTORS["growthbook"]["bucket_ranges"])
def test_growthbook_bucket_range_cases(
    count: int, coverage: float, weights: list[float] | None, expected: list[list[float]]
) -> None:
    got = bucket_ranges(count, coverage, weights)
    flat = [x for r in got for x in r]
    assert flat == pytest.approx([x for r in expected for x in r], abs=1e-9)
    assert len(got) == len(expected)


def test_every_shared_vector() -> None:
    keys = VECTORS["keys"]
    assert len(keys) >= 1000
    assert any(ord(c) > 0xFFFF for k in keys for c in k), "emoji keys (surrogate pairs) are covered"
    for i, key in enumerate(keys):
        assert fnv1a32(key) == VECTORS["fnv1a32"][i], key
        assert hash_value("__checkout", key, 1) == VECTORS["namespace_hash"][i]
    checked = 0
    for c in VECTORS["configs"]:
        ex = c["exclusion"]
        config = BucketConfig(
            seed=c["seed"],
            coverage=c["coverage"],
            weights=c["weights"],
            exclusion=None if ex is None else Exclusion(**ex),
            holdout=c["holdout"],
        )
        assert [list(r) for r in bucket_ranges(len(c["weights"]), c["coverage"], c["weights"])] == c["ranges"]
        for i, key in enumerate(keys):
            assert hash_value(c["seed"], key, 2) == c["hash"][i]
            want = c["expected"][i]
            expected = (
                Assignment(variant=want, reason="assigned")
                if isinstance(want, int)
                else Assignment(variant=None, reason=want)
            )
            assert assign(config, key) == expected, (c["name"], key)
            checked += 1
    assert checked >= 7000


def test_normalise_keeps_proportions() -> None:
    assert normalise([50, 30, 20]) == [0.5, 0.3, 0.2]
    assert sum(normalise([1, 1, 1])) == pytest.approx(1)
