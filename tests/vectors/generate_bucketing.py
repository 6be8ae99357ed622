"""Generate tests/vectors/bucketing.json, the bucketing vectors both implementations must pass.

Run once (`python tests/vectors/generate_bucketing.py`); the output is committed. The expected
values come from the small reference implementation below, written straight from GrowthBook's
published algorithm (packages/sdk-js/src/util.ts) with the plain multiply form of FNV-1a, and
checked first against GrowthBook's own spec vectors (packages/sdk-js/test/cases.json: `hash`,
`getBucketRange`, and the `bucket` 0.9943 of key "i123" under seed "feature-exp"). It imports
neither plugyard's bucketing.py nor the gateway's bucketing.js: both are tested against it.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

OUT = Path(__file__).with_name("bucketing.json")

# [seed, value, version, expected] from GrowthBook's cases.json ("hash" and the sticky-bucket cases).
GROWTHBOOK_HASH = [
    ["", "a", 1, 0.22],
    ["", "b", 1, 0.077],
    ["b", "a", 1, 0.946],
    ["ef", "d", 1, 0.652],
    ["asdf", "8952klfjas09ujk", 1, 0.549],
    ["", "123", 1, 0.011],
    ["", '___)((*":&', 1, 0.563],
    ["seed", "a", 2, 0.0505],
    ["seed", "b", 2, 0.2696],
    ["foo", "ab", 2, 0.2575],
    ["foo", "def", 2, 0.2019],
    ["89123klj", "8952klfjas09ujkasdf", 2, 0.124],
    ["90850943850283058242805", "123", 2, 0.7516],
    ["()**(%$##$%#$#", '___)((*":&', 2, 0.0128],
    ["feature-exp", "i123", 2, 0.9943],
]
# [count, coverage, weights, expected ranges] from GrowthBook's cases.json ("getBucketRange");
# GrowthBook compares them rounded, so do the tests (1e-9).
GROWTHBOOK_RANGES = [
    [2, 1, None, [[0, 0.5], [0.5, 1]]],
    [2, 0.5, None, [[0, 0.25], [0.5, 0.75]]],
    [2, 0, None, [[0, 0], [0.5, 0.5]]],
    [4, 1, None, [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1]]],
    [2, 1, [0.4, 0.6], [[0, 0.4], [0.4, 1]]],
    [3, 1, [0.2, 0.3, 0.5], [[0, 0.2], [0.2, 0.5], [0.5, 1]]],
    [3, 0.2, [0.2, 0.3, 0.5], [[0, 0.04], [0.2, 0.26], [0.5, 0.6]]],
    [2, -0.2, None, [[0, 0], [0.5, 0.5]]],
    [2, 1.5, None, [[0, 0.5], [0.5, 1]]],
    [2, 1, [0.4, 0.1], [[0, 0.5], [0.5, 1]]],
    [2, 1, [0.7, 0.6], [[0, 0.5], [0.5, 1]]],
    [4, 1, [0.4, 0.4, 0.2], [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1]]],
    [2, 1, [0.4, 0.5999], [[0, 0.4], [0.4, 0.9999]]],
]


def fnv(text: str) -> int:
    data = text.encode("utf-16-le", "surrogatepass")
    h = 0x811C9DC5
    for i in range(0, len(data), 2):
        h = ((h ^ int.from_bytes(data[i : i + 2], "little")) * 0x01000193) % 2**32
    return h


def gb_hash(seed: str, value: str, version: int) -> float:
    if version == 2:
        return (fnv(str(fnv(seed + value))) % 10000) / 10000
    return (fnv(value + seed) % 1000) / 1000


def ranges(count: int, coverage: float, weights: list[float] | None) -> list[list[float]]:
    coverage = 0 if coverage < 0 else 1 if coverage > 1 else coverage
    equal = [1 / count] * count
    w = weights if weights and len(weights) == count else equal
    total = 0.0
    for x in w:
        total += x
    if not 0.99 <= total <= 1.01:
        w = equal
    out, cumulative = [], 0.0
    for x in w:
        start = cumulative
        cumulative += x
        out.append([start, start + coverage * x])
    return out


def expected(config: dict, key: str) -> int | str:
    if not key:
        return "no-key"
    if config["holdout"] > 0 and gb_hash("__holdout:", key, 1) < config["holdout"]:
        return "holdout"
    ex = config["exclusion"]
    if ex and not ex["start"] <= gb_hash("__" + ex["group"], key, 1) < ex["end"]:
        return "excluded"
    n = gb_hash(config["seed"], key, 2)
    for i, (start, end) in enumerate(ranges(len(config["weights"]), config["coverage"], config["weights"])):
        if start <= n < end:
            return i
    return "coverage"


def keys() -> list[str]:
    rng = random.Random(20261122)
    out = ["", "a", "b", "i123", "visitor-1", " ", "ä", "日本語", "🙂", "👩‍💻", "\u00e9t\u00e9", "a\u0301"]
    out += [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(600)]
    out += [f"user-{i}" for i in range(200)]
    words = [
        "café",
        "naïve",
        "Zürich",
        "Ελλάδα",
        "Москва",
        "東京",
        "서울",
        "مرحبا",
        "שלום",
        "🚀",
        "🎉",
        "\U0001d518\U0001d52b\U0001d526",  # outside the BMP: surrogate pairs
    ]
    out += [rng.choice(words) + str(rng.randrange(10**6)) + rng.choice(words) for _ in range(300)]
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + ["é", "ß", "字", "😀", "🏳️‍🌈", "\u0000"]
    out += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))) for _ in range(100)]
    return out


CONFIGS = [
    {"name": "50/30/20", "seed": "checkout-exp", "coverage": 1, "weights": [0.5, 0.3, 0.2]},
    {"name": "50/50", "seed": "exp-key", "coverage": 1, "weights": [0.5, 0.5]},
    {"name": "phase 2 seed, 4 equal", "seed": "exp-key:2", "coverage": 1, "weights": [0.25] * 4},
    {"name": "coverage 0.4, 1/3 each", "seed": "cov", "coverage": 0.4, "weights": [1 / 3] * 3},
    {"name": "non-ASCII seed, 90/10", "seed": "größe-🙂", "coverage": 1, "weights": [0.9, 0.1]},
    {
        "name": "exclusion range 0.2..0.7",
        "seed": "excl",
        "coverage": 1,
        "weights": [0.5, 0.5],
        "exclusion": {"group": "checkout", "start": 0.2, "end": 0.7},
    },
    {"name": "holdout 0.1, 60/40", "seed": "held", "coverage": 0.8, "weights": [0.6, 0.4], "holdout": 0.1},
]


def main() -> None:
    for seed, value, version, want in GROWTHBOOK_HASH:
        assert gb_hash(seed, value, version) == want, (seed, value)
    for count, coverage, weights, want in GROWTHBOOK_RANGES:
        got = ranges(count, coverage, weights)
        assert all(
            abs(a - b) < 1e-9 for g, w in zip(got, want, strict=True) for a, b in zip(g, w, strict=True)
        )
    key_list = keys()
    configs = []
    for c in CONFIGS:
        c = {"exclusion": None, "holdout": 0, **c}
        configs.append(
            {
                **c,
                "ranges": ranges(len(c["weights"]), c["coverage"], c["weights"]),
                "hash": [gb_hash(c["seed"], k, 2) for k in key_list],
                "expected": [expected(c, k) for k in key_list],
            }
        )
    doc = {
        "description": "Bucketing vectors shared by loader_worker/src/bucketing.js and "
        "platform/plugyard/experiments/bucketing.py; generated by generate_bucketing.py. "
        "expected[i] is the variant index of keys[i], or the reason it is not in the experiment.",
        "growthbook": {"hash": GROWTHBOOK_HASH, "bucket_ranges": GROWTHBOOK_RANGES},
        "keys": key_list,
        "fnv1a32": [fnv(k) for k in key_list],
        "namespace_hash": [gb_hash("__checkout", k, 1) for k in key_list],
        "configs": configs,
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(key_list)} keys x {len(configs)} configs)")


if __name__ == "__main__":
    main()
