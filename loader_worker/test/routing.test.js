import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RouteIndex, parsePattern } from "../src/routing.js";
import { get, makeBundle, push, pushBody } from "./client.js";
import { removeStorageDir, startGateway } from "./workerd.js";

/** @type {import("./workerd.js").Gateway} */
let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
});

/** A plugin that answers its own name. */
const named = (name) =>
  makeBundle(`export default { fetch() { return new Response(${JSON.stringify(name)}) } }`);

async function pushRoutes(tenant, revision, routes) {
  const plugins = {};
  for (const { plugin } of routes) plugins[plugin] = { bundle: named(plugin) };
  const res = await push(gw, pushBody({ tenant, namespace: "prod", revision, routes, plugins }));
  assert.equal(res.status, 200, res.text);
}

async function served(host, path) {
  const res = await get(gw, host, path);
  return res.status === 200 ? res.text : res.status;
}

describe("route specificity through the gateway", () => {
  before(async () => {
    await pushRoutes("specific", 1, [
      { pattern: "*.route.test/*", plugin: "wild" },
      { pattern: "*.deep.route.test/*", plugin: "wild-deep" },
      { pattern: "exact.route.test/*", plugin: "exact-host" },
      { pattern: "exact.route.test/api/*", plugin: "api-prefix" },
      { pattern: "exact.route.test/api/v1/*", plugin: "api-v1-prefix" },
      { pattern: "exact.route.test/api", plugin: "api-exact" },
      { pattern: "only.route.test/only", plugin: "only" },
      { pattern: "*.x.test/*", plugin: "x-wild" },
    ]);
  });

  test("an exact host beats a wildcard host", async () => {
    assert.equal(await served("exact.route.test", "/"), "exact-host");
    assert.equal(await served("EXACT.Route.Test:8443", "/anything"), "exact-host");
    assert.equal(await served("other.route.test", "/"), "wild");
  });

  test("a wildcard matches any depth, and a longer suffix beats a shorter one", async () => {
    assert.equal(await served("a.b.c.route.test", "/"), "wild");
    assert.equal(await served("x.deep.route.test", "/"), "wild-deep");
    assert.equal(await served("y.x.deep.route.test", "/"), "wild-deep");
    assert.equal(await served("deep.route.test", "/"), "wild");
  });

  test("*.x.test does not match x.test", async () => {
    assert.equal(await served("x.test", "/"), 404);
    assert.equal(await served("a.x.test", "/"), "x-wild");
    assert.equal(await served("route.test", "/"), 404);
  });

  test("an exact path beats a prefix, a longer prefix beats a shorter one", async () => {
    assert.equal(await served("exact.route.test", "/api"), "api-exact");
    assert.equal(await served("exact.route.test", "/api/"), "api-prefix");
    assert.equal(await served("exact.route.test", "/api/items"), "api-prefix");
    assert.equal(await served("exact.route.test", "/api/v1/items"), "api-v1-prefix");
    assert.equal(await served("exact.route.test", "/apix"), "exact-host");
  });

  test("an exact host without a matching path falls back to wildcards", async () => {
    assert.equal(await served("only.route.test", "/only"), "only");
    assert.equal(await served("only.route.test", "/other"), "wild");
  });

  test("the query string is not part of the path", async () => {
    assert.equal(await served("exact.route.test", "/api?x=1"), "api-exact");
  });
});

describe("a pattern held by two namespaces", () => {
  test("the most recent push wins, and the older holder returns when it is dropped", async () => {
    await pushRoutes("first", 1, [{ pattern: "shared.test/*", plugin: "first" }]);
    assert.equal(await served("shared.test", "/"), "first");
    await pushRoutes("second", 1, [{ pattern: "shared.test/*", plugin: "second" }]);
    assert.equal(await served("shared.test", "/"), "second");
    await pushRoutes("second", 2, []);
    assert.equal(await served("shared.test", "/"), "first");
  });
});

describe("RouteIndex (in process)", () => {
  test("parsePattern rejects what is not host/path", () => {
    assert.equal(parsePattern("no-path.test"), null);
    assert.equal(parsePattern("/just-path"), null);
    assert.equal(parsePattern("a.test/x*y"), null);
    assert.deepEqual(parsePattern("*.Acme.test/api/*"), {
      wildcard: true, host: "acme.test", prefix: true, path: "/api/",
    });
  });

  test("lookups stay fast with 10,000 tenants × 3 routes", () => {
    const index = new RouteIndex();
    for (let i = 0; i < 10_000; i++) {
      index.setNamespaceRoutes(`t${i}/prod`, i + 1, [
        { pattern: `shop.t${i}.test/*`, plugin: "shop" },
        { pattern: `shop.t${i}.test/api/*`, plugin: "api" },
        { pattern: `*.t${i}.test/*`, plugin: "wild" },
      ]);
    }
    const start = performance.now();
    let hits = 0;
    for (let n = 0; n < 100_000; n++) {
      const i = n % 10_000;
      const host = n % 2 ? `shop.t${i}.test` : `x.y.t${i}.test`;
      if (index.match(host, "/api/items")) hits++;
    }
    const perLookupUs = ((performance.now() - start) * 1000) / 100_000;
    assert.equal(hits, 100_000);
    assert.equal(index.match("shop.t42.test", "/api/x").plugin, "api");
    assert.equal(index.match("a.t42.test", "/api/x").plugin, "wild");
    assert.ok(perLookupUs < 20, `${perLookupUs.toFixed(2)} µs per lookup`);
  });
});
