import assert from "node:assert/strict";
import { after, test } from "node:test";
import { DEBUG, get, makeBundle, newNonce, push, pushBody, signHeaders, signedRequest } from "./client.js";
import { rawRequest, removeStorageDir, startGateway, tempStorageDir } from "./workerd.js";

const storageDir = tempStorageDir();
const secret = "restart-secret";
/** @type {import("./workerd.js").Gateway | undefined} */
let gw;
after(async () => {
  await gw?.stop();
  removeStorageDir(storageDir);
});

test("a restarted gateway serves the last pushed state without any push", async () => {
  gw = await startGateway({ storageDir, secret });
  const v1 = makeBundle(`export default { fetch(r, env) { return new Response("v1 " + env.WHO) } }`);
  const v2 = makeBundle(`export default { fetch(r, env) { return new Response("v2 " + env.WHO) } }`);
  const body = (revision, bundle) => pushBody({
    tenant: "durable", namespace: "prod", revision,
    routes: [{ pattern: "durable.test/*", plugin: "p" }],
    plugins: { p: { bundle, vars: { WHO: "durable" } } },
  });
  assert.equal((await push(gw, body(1, v1))).status, 200);
  assert.equal((await push(gw, body(2, v2))).status, 200);
  assert.equal((await get(gw, "durable.test", "/")).text, "v2 durable");

  // A push whose nonce we will replay after the restart.
  const path = "/_plugyard/namespaces/durable/prod";
  const replayBody = JSON.stringify(body(3, v1));
  const headers = signHeaders(secret, { method: "PUT", path, body: replayBody, nonce: newNonce() });
  assert.equal((await rawRequest(gw.port, { method: "PUT", path, headers, body: replayBody })).status, 200);
  await gw.stop();

  gw = await startGateway({ storageDir, secret });
  // Concurrent first requests on a cold isolate share one snapshot load.
  const burst = await Promise.all(Array.from({ length: 20 }, () => get(gw, "durable.test", "/")));
  assert.deepEqual(new Set(burst.map((r) => r.text)), new Set(["v1 durable"]), gw.output());
  const res = await get(gw, "durable.test", "/", DEBUG);
  assert.equal(res.status, 200, res.text + gw.output());
  assert.equal(res.text, "v1 durable");
  assert.equal(res.headers["x-plugyard-version"], v1.hash.slice(0, 12));

  const health = (await signedRequest(gw, { path: "/_plugyard/health" })).json();
  assert.equal(health.namespaces["durable/prod"], 3);
  assert.equal(health.generation, 3);

  assert.doesNotMatch(gw.output(), /different request context|Error/);
  const replayed = await rawRequest(gw.port, { method: "PUT", path, headers, body: replayBody });
  assert.equal(replayed.status, 401);
  assert.equal(replayed.json().type, "https://plugyard.dev/problems/replayed-request");
});

test("a second process on the same storage converges within about a second", async () => {
  const other = await startGateway({ storageDir, secret });
  try {
    // Load other's snapshot before the push, so only the background re-check can pick it up.
    assert.equal((await get(other, "converge.test", "/")).status, 404);
    const bundle = makeBundle(`export default { fetch() { return new Response("converged") } }`);
    const res = await push(gw, pushBody({
      tenant: "converge", namespace: "prod", revision: 1,
      routes: [{ pattern: "converge.test/*", plugin: "c" }],
      plugins: { c: { bundle } },
    }));
    assert.equal(res.status, 200, res.text);
    const start = Date.now();
    let text;
    while (Date.now() - start < 5000) {
      const r = await get(other, "converge.test", "/");
      if (r.status === 200) { text = r.text; break; }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(text, "converged", other.output());
    console.log(`converged after ${Date.now() - start} ms`);
  } finally {
    await other.stop();
  }
});
