// The data plane's per-request shortcuts (src/data-plane.js, index.js, experiments.js) keep
// every behaviour: request ids stay unique, warm isolates are reused (also per experiment
// variant), and anything that changes a plugin's state gets a fresh isolate. Real workerd.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { DEBUG, get, makeBundle, push, pushBody, signedRequest } from "./client.js";
import { rawRequest, removeStorageDir, startGateway } from "./workerd.js";

/** @type {import("./workerd.js").Gateway} */
let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
});

/** @returns {Promise<number>} isolates this gateway process has loaded so far. */
async function isolates() {
  return (await signedRequest(gw, { path: "/_plugyard/process" })).json().isolates;
}

test("problem instances (request ids) are unique: one random prefix per isolate and a counter", async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const res = await get(gw, "nowhere.hot.test", `/${i}`);
    assert.equal(res.status, 404);
    ids.push(res.json().instance);
  }
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^[0-9a-f]{16}-[0-9a-z]+$/);
  assert.equal(new Set(ids.map((id) => id.split("-")[0])).size, 1);
  // Another process draws another prefix.
  const other = await startGateway();
  try {
    const theirs = (await get(other, "nowhere.hot.test", "/")).json().instance;
    assert.notEqual(theirs.split("-")[0], ids[0].split("-")[0]);
  } finally {
    await other.stop();
    removeStorageDir(other.storageDir);
  }
});

test("a warm isolate serves every request; new vars or a new version load a new one", async () => {
  const v1 = makeBundle(`export default { fetch(r, env) { return new Response("v1 " + env.WHO) } }`);
  const v2 = makeBundle(`export default { fetch(r, env) { return new Response("v2 " + env.WHO) } }`);
  const body = (revision, bundle, who) => pushBody({
    tenant: "hot", namespace: "prod", revision,
    routes: [{ pattern: "hot.test/*", plugin: "p" }],
    plugins: { p: { bundle, vars: { WHO: who } } },
  });
  assert.equal((await push(gw, body(1, v1, "a"))).status, 200);
  const start = await isolates();
  for (let i = 0; i < 10; i++) {
    // Diagnostic headers only when asked for: the plugin's response is passed through untouched.
    const res = await get(gw, "hot.test", "/", i % 2 ? DEBUG : {});
    assert.equal(res.text, "v1 a");
    assert.equal(res.headers["content-length"], "4");
    if (i % 2) {
      assert.equal(res.headers["x-plugyard-version"], v1.hash.slice(0, 12));
      assert.match(String(res.headers["server-timing"]), /^plugin;dur=\d+$/);
    } else {
      assert.equal(res.headers["x-plugyard-version"], undefined);
      assert.equal(res.headers["server-timing"], undefined);
    }
  }
  assert.equal(await isolates(), start + 1);
  // Same version and vars at a new revision: the same isolate.
  assert.equal((await push(gw, body(2, v1, "a"))).status, 200);
  assert.equal((await get(gw, "hot.test", "/")).text, "v1 a");
  assert.equal(await isolates(), start + 1);
  // New vars: a new isolate with them, at once.
  assert.equal((await push(gw, body(3, v1, "b"))).status, 200);
  assert.equal((await get(gw, "hot.test", "/")).text, "v1 b");
  assert.equal(await isolates(), start + 2);
  // A new version (its code in the push, served from memory): live on the next request.
  assert.equal((await push(gw, body(4, v2, "b"))).status, 200);
  assert.equal((await get(gw, "hot.test", "/")).text, "v2 b");
  // Back to v1 with vars "a": that isolate is still loaded.
  assert.equal((await push(gw, body(5, v1, "a"))).status, 200);
  assert.equal((await get(gw, "hot.test", "/")).text, "v1 a");
  assert.equal(await isolates(), start + 3);
});

test("each experiment variant keeps its own warm isolate across requests", async () => {
  const a = makeBundle(`export default { fetch() { return new Response("A") } }`);
  const b = makeBundle(`export default { fetch() { return new Response("B") } }`);
  const body = pushBody({
    tenant: "hotexp", namespace: "prod", revision: 1,
    routes: [{ pattern: "hotexp.test/*", plugin: "shop" }],
    plugins: { shop: { bundle: a } },
  });
  body.bundles[b.hash] = b.bundle;
  body.plugins.shop.experiment = {
    key: "exp", seed: "exp", phase: 1, state: "running", coverage: 1,
    variants: [
      { name: "control", version: a.hash, env_hash: "0123456789abcdef", limits: null, weight: 0.5 },
      { name: "b", version: b.hash, env_hash: "0123456789abcdef", limits: null, weight: 0.5 },
    ],
    sticky: { source: "header", name: "x-user" }, exclusion: null, holdout: 0,
  };
  assert.equal((await push(gw, body)).status, 200);
  const start = await isolates();
  const seen = new Map();
  for (let i = 0; i < 30; i++) {
    const res = await rawRequest(gw.port, { host: "hotexp.test", path: "/", headers: { "x-user": `u${i % 10}` } });
    assert.equal(res.status, 200, res.text);
    const variant = res.headers["x-plugyard-variant"];
    assert.equal(res.text, variant === "control" ? "A" : "B");
    if (seen.has(i % 10)) assert.equal(seen.get(i % 10), variant, "sticky");
    seen.set(i % 10, variant);
  }
  assert.equal(new Set(seen.values()).size, 2, "both variants served");
  assert.equal(await isolates(), start + 2);
});
