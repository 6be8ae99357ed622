import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { problem, TITLES } from "../src/problems.js";

const SRC = new URL("../src/", import.meta.url);
// `problem(` as a call (not the definition `function problem(`), its status and its slug argument.
const CALL = /(?<![\w.])problem\(\s*(\d+)\s*,\s*("([^"]*)"|[^,)]*)/g;

/** @returns {{file: string, status: number, slug: string | null, arg: string}[]} */
function problemCalls() {
  const calls = [];
  for (const file of readdirSync(SRC).filter((name) => name.endsWith(".js"))) {
    const source = readFileSync(new URL(file, SRC), "utf8").replace(/function problem\(/g, "");
    for (const match of source.matchAll(CALL)) {
      calls.push({ file, status: Number(match[1]), slug: match[3] ?? null, arg: match[2].trim() });
    }
  }
  return calls;
}

test("every slug passed to problem() in src has its own title", () => {
  const calls = problemCalls();
  assert.ok(calls.length >= 20, `found only ${calls.length} problem() calls: is the pattern stale?`);
  const literal = calls.filter((call) => call.slug === null);
  assert.deepEqual(literal, [], "problem() slugs must be string literals, so this test can see them");
  const missing = calls.filter((call) => !Object.hasOwn(TITLES, call.slug));
  assert.deepEqual(missing, [], "slugs without a title in src/problems.js TITLES");
});

test("every call's answer carries the slug's title, not the slug", async () => {
  for (const { status, slug } of problemCalls()) {
    const response = problem(status, slug, "detail", "req-1");
    assert.equal(response.status, status);
    assert.equal(response.headers.get("content-type"), "application/problem+json");
    const body = await response.json();
    assert.equal(body.type, `https://plugyard.dev/problems/${slug}`);
    assert.equal(body.title, TITLES[slug]);
    assert.notEqual(body.title, slug);
    assert.match(body.title, /^[A-Z]/);
  }
});

test("every title is used by some call (no stale titles)", () => {
  const used = new Set(problemCalls().map((call) => call.slug));
  const unused = Object.keys(TITLES).filter((slug) => !used.has(slug));
  assert.deepEqual(unused, []);
});
