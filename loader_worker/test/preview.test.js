import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { get, makeBundle, push, pushBody, signedRequest } from "./client.js";
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

const DOMAIN = "preview.plugyard.localhost";
const newId = () => [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");

function putPreview(id, bundle, overrides = {}) {
  const body = {
    tenant: "acme", namespace: "prod", plugin: "hello",
    version: bundle.hash, env_hash: "0123456789abcdef",
    vars: { GREETING: "preview" }, secrets: { TOKEN: "t0k" }, limits: { cpuMs: 50 },
    bundle: bundle.bundle, expires_at: Math.floor(Date.now() / 1000) + 600,
    ...overrides,
  };
  return signedRequest(gw, { method: "PUT", path: `/_plugyard/previews/${id}`, body });
}

test("a registered preview serves its version with env, marked as a preview", async () => {
  const live = makeBundle(`export default { fetch() { return new Response("live") } }`);
  const next = makeBundle(`export default { fetch(r, env) { return new Response(env.GREETING + " " + env.TOKEN) } }`);
  assert.equal((await push(gw, pushBody({
    tenant: "acme", namespace: "prod", revision: 1,
    routes: [{ pattern: "acme.test/*", plugin: "hello" }],
    plugins: { hello: { bundle: live } },
  }))).status, 200);
  const id = newId();
  const stored = await putPreview(id, next);
  assert.equal(stored.status, 200, stored.text);

  const res = await get(gw, `${id}.${DOMAIN}`, "/");
  assert.equal(res.status, 200, res.text);
  assert.equal(res.text, "preview t0k");
  assert.equal(res.headers["x-plugyard-preview"], "1");
  assert.equal(res.headers["x-plugyard-version"], next.hash.slice(0, 12));
  // Live traffic is untouched.
  const liveRes = await get(gw, "acme.test", "/");
  assert.equal(liveRes.text, "live");
  assert.equal(liveRes.headers["x-plugyard-preview"], undefined);
});

test("unknown, malformed and expired preview hosts are 404 and never fall through to routes", async () => {
  const bundle = makeBundle(`export default { fetch() { return new Response("x") } }`);
  assert.equal((await push(gw, pushBody({
    tenant: "greedy", namespace: "prod", revision: 1,
    routes: [{ pattern: `*.${DOMAIN}/*`, plugin: "grab" }],
    plugins: { grab: { bundle } },
  }))).status, 200);
  for (const host of [`${newId()}.${DOMAIN}`, `not-an-id.${DOMAIN}`]) {
    const res = await get(gw, host, "/");
    assert.equal(res.status, 404, host);
    assert.equal(res.json().type, "https://plugyard.dev/problems/no-preview");
  }
  const id = newId();
  assert.equal((await putPreview(id, bundle, { expires_at: Math.floor(Date.now() / 1000) - 1 })).status, 200);
  assert.equal((await get(gw, `${id}.${DOMAIN}`, "/")).status, 404);
});

test("preview registrations are checked", async () => {
  const bundle = makeBundle(`export default { fetch() { return new Response("x") } }`);
  assert.equal((await putPreview("short", bundle)).status, 400);
  assert.equal((await putPreview(newId(), bundle, { version: "nope" })).status, 400);
  assert.equal((await putPreview(newId(), bundle, { secrets: { A: 1 } })).status, 400);
  assert.equal((await putPreview(newId(), bundle, { limits: { memory: 5 } })).status, 400);
  const wrong = await signedRequest(gw, { method: "GET", path: `/_plugyard/previews/${newId()}` });
  assert.equal(wrong.status, 405);
});
