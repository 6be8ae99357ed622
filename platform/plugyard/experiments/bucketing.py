"""Deterministic, GrowthBook-compatible bucketing: the control plane's twin of the gateway's.

Follows GrowthBook's JavaScript SDK (growthbook/growthbook, packages/sdk-js/src/util.ts):
`hashFnv32a`, `hash` (version 2 for variant assignment, version 1 for namespaces, as
`inNamespace` does), `getBucketRanges` and `chooseVariation`. FNV-1a runs over UTF-16 code
units, as the SDK's `charCodeAt` loop does, so a key outside the Basic Multilingual Plane
(an emoji) hashes as its two surrogates. loader_worker/src/bucketing.js is the JavaScript
side; both pass tests/vectors/bucketing.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

HOLDOUT_GROUP = "holdout:"  # ":" cannot occur in an exclusion-group slug
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 16777619

Reason = Literal["assigned", "no-key", "holdout", "excluded", "coverage"]


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]


def fnv1a32(text: str) -> int:
    """FNV-1a, 32 bit, over the UTF-16 code units of `text` (GrowthBook's `hashFnv32a`)."""
    h = _FNV_OFFSET
    for unit in _utf16_units(text):
        h = ((h ^ unit) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def hash_value(seed: str, value: str, version: Literal[1, 2]) -> float:
    """GrowthBook's `hash`: a number in [0, 1).

    Version 2 is `fnv(str(fnv(seed + value))) % 10000 / 10000`; version 1 (namespaces) is
    `fnv(value + seed) % 1000 / 1000`.
    """
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    return (fnv1a32(value + seed) % 1000) / 1000


def in_namespace(key: str, group: str, start: float, end: float) -> bool:
    """GrowthBook's `inNamespace`: is the key's namespace hash inside [start, end)?"""
    n = hash_value("__" + group, key, 1)
    return start <= n < end


def bucket_ranges(count: int, coverage: float, weights: Sequence[float] | None) -> list[tuple[float, float]]:
    """GrowthBook's `getBucketRanges`: one [start, end) range per variant.

    Coverage is clamped to [0, 1]; unusable weights (wrong length, sum outside 0.99..1.01)
    fall back to equal weights. Sums are plain left-to-right additions, exactly as in
    JavaScript (not `math.fsum`), so both sides produce the same floats.
    """
    cover = min(max(coverage, 0.0), 1.0)
    equal = [1 / count] * count if count > 0 else []
    chosen: Sequence[float] = weights if weights is not None and len(weights) == count else equal
    total = 0.0
    for w in chosen:
        total += w
    if total < 0.99 or total > 1.01:
        chosen = equal
    ranges: list[tuple[float, float]] = []
    cumulative = 0.0
    for w in chosen:
        start = cumulative
        cumulative += w
        ranges.append((start, start + cover * w))
    return ranges


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """GrowthBook's `chooseVariation`: index of the range holding n, or -1."""
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return -1


class Exclusion(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed [start, end) range of an exclusion group."""

    group: str
    start: float
    end: float


class BucketConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What assignment depends on (the same fields the gateway receives)."""

    seed: str
    coverage: float
    weights: list[float]
    exclusion: Exclusion | None = None
    holdout: float = 0.0


class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    """A variant index (None when the key is not in the experiment) and why."""

    variant: int | None
    reason: Reason


def assign(config: BucketConfig, key: str) -> Assignment:
    """Which variant a key gets. Order: holdout, exclusion range, then coverage and weights."""
    if not key:
        return Assignment(variant=None, reason="no-key")
    if config.holdout > 0 and in_namespace(key, HOLDOUT_GROUP, 0, config.holdout):
        return Assignment(variant=None, reason="holdout")
    ex = config.exclusion
    if ex is not None and not in_namespace(key, ex.group, ex.start, ex.end):
        return Assignment(variant=None, reason="excluded")
    n = hash_value(config.seed, key, 2)
    i = choose_variation(n, bucket_ranges(len(config.weights), config.coverage, config.weights))
    if i < 0:
        return Assignment(variant=None, reason="coverage")
    return Assignment(variant=i, reason="assigned")


def normalise(weights: Sequence[float]) -> list[float]:
    """Weights as shares of their sum (what is stored and pushed)."""
    total = 0.0
    for w in weights:
        total += w
    return [w / total for w in weights]
