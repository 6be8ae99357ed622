// Unit tests of the gateway's in-memory bundle cache (src/bundle-cache.js): pure JS, no workerd.
// The cold path through it (push → first request without a Registry read) is exercised by every
// workerd test that pushes a version and then requests it; test/hot-path.test.js covers the
// Registry fallback after a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BundleCache, bundleBytes } from "../src/bundle-cache.js";

/** @param {string} text @returns {any} a one-module bundle whose module is `text`. */
const bundle = (text) => ({ mainModule: "index.js", modules: { "index.js": { js: text } } });

test("a kept bundle is returned by its hash, the same object", () => {
  const cache = new BundleCache(1000);
  const b = bundle("x".repeat(10));
  cache.put("h1", b);
  assert.equal(cache.get("h1"), b);
  assert.equal(cache.get("h2"), undefined);
  assert.deepEqual(cache.status(), { bundles: 1, bytes: 10 });
});

test("the byte bound evicts the least recently used bundle first", () => {
  const cache = new BundleCache(1000);
  cache.put("a", bundle("a".repeat(200)));
  cache.put("b", bundle("b".repeat(200)));
  cache.put("c", bundle("c".repeat(200)));
  cache.put("d", bundle("d".repeat(200)));
  assert.ok(cache.get("a")); // a is now the most recently used; b is the oldest
  cache.put("e", bundle("e".repeat(200))); // 1000: still fits
  assert.equal(cache.status().bytes, 1000);
  cache.put("f", bundle("f".repeat(200))); // 1200 > 1000: b goes
  assert.equal(cache.get("b"), undefined);
  for (const hash of ["a", "c", "d", "e", "f"]) assert.ok(cache.get(hash), hash);
  assert.deepEqual(cache.status(), { bundles: 5, bytes: 1000 });
});

test("putting a held hash again replaces it without counting it twice", () => {
  const cache = new BundleCache(1000);
  cache.put("a", bundle("a".repeat(100)));
  cache.put("a", bundle("a".repeat(150)));
  assert.deepEqual(cache.status(), { bundles: 1, bytes: 150 });
});

test("a bundle above a quarter of the bound is not kept, and evicts nothing", () => {
  const cache = new BundleCache(1000);
  cache.put("small", bundle("s".repeat(100)));
  cache.put("big", bundle("b".repeat(251)));
  assert.equal(cache.get("big"), undefined);
  assert.ok(cache.get("small"));
});

test("malformed values are ignored; non-string module parts count a fixed size", () => {
  const cache = new BundleCache(1000);
  cache.put("n", null);
  cache.put("m", { mainModule: "x" });
  assert.deepEqual(cache.status(), { bundles: 0, bytes: 0 });
  assert.equal(bundleBytes({ modules: { "a.js": { js: "abc" }, "b.bin": { data: "QUJD" }, c: { json: { k: 1 } } } }), 3 + 4 + 64);
});
