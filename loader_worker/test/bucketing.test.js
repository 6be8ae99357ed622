import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { assign, bucketRanges, fnv1a32, hash, inNamespace } from "../src/bucketing.js";

const vectors = JSON.parse(
  readFileSync(new URL("../../tests/vectors/bucketing.json", import.meta.url), "utf8"),
);

test("GrowthBook's own hash and bucket-range cases", () => {
  for (const [seed, value, version, expected] of vectors.growthbook.hash) {
    assert.equal(hash(seed, value, version), expected, `${seed}|${value}|v${version}`);
  }
  for (const [count, coverage, weights, expected] of vectors.growthbook.bucket_ranges) {
    const got = bucketRanges(count, coverage, weights);
    assert.equal(got.length, expected.length);
    got.forEach(([a, b], i) => {
      assert.ok(Math.abs(a - expected[i][0]) < 1e-9 && Math.abs(b - expected[i][1]) < 1e-9, JSON.stringify(got));
    });
  }
});

test("every shared vector: FNV-1a over UTF-16, namespace hash, v2 hash, ranges, assignment", () => {
  const { keys } = vectors;
  assert.ok(keys.length >= 1000);
  keys.forEach((key, i) => {
    assert.equal(fnv1a32(key), vectors.fnv1a32[i], `fnv of ${JSON.stringify(key)}`);
    assert.equal(hash("__checkout", key, 1), vectors.namespace_hash[i]);
  });
  let checked = 0;
  for (const config of vectors.configs) {
    assert.deepEqual(bucketRanges(config.weights.length, config.coverage, config.weights), config.ranges);
    keys.forEach((key, i) => {
      assert.equal(hash(config.seed, key, 2), config.hash[i]);
      const got = assign(config, key);
      const want = config.expected[i];
      if (typeof want === "number") assert.deepEqual(got, { variant: want, reason: "assigned" });
      else assert.deepEqual(got, { variant: null, reason: want }, `${config.name}: ${JSON.stringify(key)}`);
      checked++;
    });
  }
  assert.ok(checked >= 7000);
});

test("inNamespace is a half-open range", () => {
  const key = vectors.keys[5];
  const n = hash("__g", key, 1);
  assert.ok(inNamespace(key, "g", n, n + 0.001));
  assert.ok(!inNamespace(key, "g", 0, n));
});
