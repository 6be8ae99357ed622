import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { get, makeBundle, push, pushBody, signedRequest } from "./client.js";
import { removeStorageDir, startGateway } from "./workerd.js";

const PROBLEM = "https://plugyard.dev/problems/";
let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
});

function deploy(tenant, host, bundle, revision = 1, quarantine = undefined) {
  const body = pushBody({
    tenant, namespace: "prod", revision,
    routes: [{ pattern: `${host}/*`, plugin: "p" }],
    plugins: { p: { bundle } },
  });
  if (quarantine) body.plugins.p.quarantine = quarantine;
  return push(gw, body);
}

test("the process probe is signed and counts loaded isolates", async () => {
  const unsigned = await get(gw, "x.test", "/_plugyard/process");
  assert.equal(unsigned.status, 401);
  const before = (await signedRequest(gw, { path: "/_plugyard/process" })).json();
  assert.equal(before.role, "single");
  const bundle = makeBundle(`export default { fetch() { return new Response("one") } }`);
  assert.equal((await deploy("probe-t", "probe.q.test", bundle)).status, 200);
  assert.equal((await get(gw, "probe.q.test", "/")).text, "one");
  assert.equal((await get(gw, "probe.q.test", "/")).text, "one");
  const after = (await signedRequest(gw, { path: "/_plugyard/process" })).json();
  assert.equal(after.isolates, before.isolates + 1);
});

test("POST /_plugyard/quarantine stops routing the version at once; the next push decides", async () => {
  const bundle = makeBundle(`export default { fetch() { return new Response("q") } }`);
  assert.equal((await deploy("quar-t", "quar.q.test", bundle)).status, 200);
  assert.equal((await get(gw, "quar.q.test", "/")).text, "q");
  const body = { tenant: "quar-t", namespace: "prod", plugin: "p", version: bundle.hash, reason: "it hung" };
  const res = await signedRequest(gw, { method: "POST", path: "/_plugyard/quarantine", body });
  assert.equal(res.status, 200, res.text);
  const blocked = await get(gw, "quar.q.test", "/");
  assert.equal(blocked.status, 503);
  assert.equal(blocked.json().type, PROBLEM + "plugin-quarantined");
  assert.match(blocked.json().detail, /it hung/);
  // A push without the mark (the control plane released it) routes it again...
  assert.equal((await deploy("quar-t", "quar.q.test", bundle, 2)).status, 200);
  assert.equal((await get(gw, "quar.q.test", "/")).text, "q");
  // ...and one with it (the control plane's record) blocks it.
  assert.equal((await deploy("quar-t", "quar.q.test", bundle, 3, { [bundle.hash]: "recorded" })).status, 200);
  assert.equal((await get(gw, "quar.q.test", "/")).status, 503);

  const unknown = await signedRequest(gw, {
    method: "POST", path: "/_plugyard/quarantine", body: { ...body, plugin: "nope" },
  });
  assert.equal(unknown.status, 404);
  const bad = await signedRequest(gw, { method: "POST", path: "/_plugyard/quarantine", body: { ...body, version: "x" } });
  assert.equal(bad.status, 400);
});
