import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";
import { assign } from "../src/bucketing.js";
import { makeBundle, push, pushBody } from "./client.js";
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

const v1 = makeBundle(`export default { fetch() { return new Response("v1") } }`);
const v2 = makeBundle(`export default { fetch() { return new Response("v2") } }`);
const ENV_HASH = "0123456789abcdef";

function experiment(overrides = {}) {
  return {
    key: "exp",
    seed: "exp",
    phase: 1,
    state: "running",
    coverage: 1,
    variants: [
      { name: "control", version: v1.hash, env_hash: ENV_HASH, limits: null, weight: 0.5 },
      { name: "b", version: v2.hash, env_hash: ENV_HASH, limits: null, weight: 0.5 },
    ],
    sticky: { source: "header", name: "x-user" },
    exclusion: null,
    holdout: 0,
    ...overrides,
  };
}

let revision = 0;
async function pushExperiment(tenant, host, exp) {
  const body = pushBody({
    tenant,
    namespace: "prod",
    revision: ++revision,
    routes: [{ pattern: `${host}/*`, plugin: "shop" }],
    plugins: { shop: { bundle: v1 } },
  });
  if (exp) body.plugins.shop.experiment = exp;
  // The variant's code travels with the push (v1 is there as the active version).
  body.bundles[v2.hash] = v2.bundle;
  const res = await push(gw, body);
  assert.equal(res.status, 200, res.text);
}

const get = (host, headers = {}) => rawRequest(gw.port, { host, path: "/", headers });

test("header-keyed visitors get the variant bucketing.js computes, every time", async () => {
  await pushExperiment("hdr", "hdr.test", experiment());
  const config = { seed: "exp", coverage: 1, weights: [0.5, 0.5], exclusion: null, holdout: 0 };
  for (let i = 0; i < 40; i++) {
    const user = `user-${i}`;
    const expected = ["control", "b"][assign(config, user).variant];
    for (let visit = 0; visit < 2; visit++) {
      // The second visit asks for the diagnostic headers too: the variant header is there either way.
      const res = await get("hdr.test", { "x-user": user, ...(visit ? { "x-plugyard-debug": "1" } : {}) });
      assert.equal(res.headers["x-plugyard-variant"], expected);
      assert.equal(res.text, expected === "control" ? "v1" : "v2");
      assert.equal(res.headers["set-cookie"], undefined, "header-keyed: no cookie");
      assert.equal(res.headers["x-plugyard-version"] === undefined, visit === 0);
      assert.equal(res.headers["server-timing"] === undefined, visit === 0);
    }
  }
});

test("cookie-keyed: a new visitor gets an HttpOnly, SameSite=Lax cookie and keeps the variant", async () => {
  await pushExperiment("ck", "ck.test", experiment({ sticky: { source: "cookie", name: "pv" } }));
  const first = await get("ck.test");
  const cookie = first.headers["set-cookie"][0];
  assert.match(cookie, /^pv=[0-9a-f-]{36}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
  const id = cookie.split(";")[0];
  for (let i = 0; i < 5; i++) {
    const again = await get("ck.test", { cookie: `other=1; ${id}` });
    assert.equal(again.headers["x-plugyard-variant"], first.headers["x-plugyard-variant"]);
    assert.equal(again.headers["set-cookie"], undefined);
  }
  const https = await get("ck.test", { "x-forwarded-proto": "https" });
  assert.match(https.headers["set-cookie"][0], /; Secure$/);
});

test("paused: everyone gets the active version; no cookie is set", async () => {
  await pushExperiment("ps", "ps.test", experiment({ state: "paused", sticky: { source: "cookie", name: "pv" } }));
  for (let i = 0; i < 10; i++) {
    const res = await get("ps.test", { "x-user": `u${i}` });
    assert.equal(res.text, "v1");
    assert.equal(res.headers["x-plugyard-variant"], "none");
    assert.equal(res.headers["set-cookie"], undefined);
  }
});

test("coverage 0.01: nearly everyone gets the active version", async () => {
  await pushExperiment("cv", "cv.test", experiment({ coverage: 0.01 }));
  let inExperiment = 0;
  for (let i = 0; i < 100; i++) {
    const res = await get("cv.test", { "x-user": `u${i}` });
    if (res.headers["x-plugyard-variant"] !== "none") inExperiment++;
  }
  assert.ok(inExperiment < 10, `${inExperiment} of 100 in the experiment`);
});

function previewToken(secret, payload) {
  const key = createHmac("sha256", secret).update("plugyard-experiment-preview").digest();
  const part = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return `v1.${part}.${createHmac("sha256", key).update(part).digest("hex")}`;
}

test("a signed preview token forces its variant; forged, expired or foreign ones do not", async () => {
  await pushExperiment("pv", "pv.test", experiment());
  const payload = { t: "pv", n: "prod", p: "shop", e: "exp", v: "b", x: Math.floor(Date.now() / 1000) + 60 };
  // A user that buckets into control, to see the override win.
  const config = { seed: "exp", coverage: 1, weights: [0.5, 0.5], exclusion: null, holdout: 0 };
  let user = 0;
  while (assign(config, `u${user}`).variant !== 0) user++;
  const headers = { "x-user": `u${user}` };
  const forced = await get("pv.test", { ...headers, "x-plugyard-preview-variant": previewToken(gw.secret, payload) });
  assert.equal(forced.text, "v2");
  assert.equal(forced.headers["x-plugyard-variant"], "b");
  for (const bad of [
    previewToken("wrong-secret", payload),
    previewToken(gw.secret, { ...payload, x: 1 }),
    previewToken(gw.secret, { ...payload, t: "other" }),
    "garbage",
  ]) {
    const res = await get("pv.test", { ...headers, "x-plugyard-preview-variant": bad });
    assert.equal(res.text, "v1");
    assert.equal(res.headers["x-plugyard-variant"], "control");
  }
});

test("a push with a malformed experiment is refused", async () => {
  const body = pushBody({
    tenant: "bad", namespace: "prod", revision: 1,
    routes: [{ pattern: "bad-exp.test/*", plugin: "shop" }],
    plugins: { shop: { bundle: v1 } },
  });
  body.plugins.shop.experiment = experiment({ variants: [] });
  const res = await push(gw, body);
  assert.equal(res.status, 400);
  assert.match(res.json().detail, /at least 2 variants/);
});

test("a variant whose bundle is neither pushed nor stored is refused", async () => {
  const v3 = makeBundle(`export default { fetch() { return new Response("v3") } }`);
  const body = pushBody({
    tenant: "miss", namespace: "prod", revision: 1,
    routes: [{ pattern: "miss.test/*", plugin: "shop" }],
    plugins: { shop: { bundle: v1 } },
  });
  const exp = experiment();
  exp.variants[1].version = v3.hash;
  body.plugins.shop.experiment = exp;
  const res = await push(gw, body);
  assert.equal(res.status, 400);
  assert.match(res.json().detail, new RegExp(v3.hash));
});
