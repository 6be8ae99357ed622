import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { get, makeBundle, push, pushBody, signedRequest } from "./client.js";
import { rawRequest, removeStorageDir, startGateway } from "./workerd.js";

const PROBLEM = "https://plugyard.dev/problems/";
// (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
const ADD_WASM = Buffer.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01,
  0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x07, 0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x0a, 0x09,
  0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b,
]).toString("base64");

/** @type {import("./workerd.js").Gateway} */
let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
});

/** @param {Record<string, Record<string, unknown>>} modules @param {string} [main] */
function validate(modules, main = "index.js", limits = null) {
  const bundle = { mainModule: main, modules, compatibilityDate: "2025-11-01", compatibilityFlags: [] };
  return signedRequest(gw, { method: "POST", path: "/_plugyard/validate", body: { bundle, limits } });
}

function assertRejected(res, module, pattern) {
  assert.equal(res.status, 422, res.text);
  assert.equal(res.headers["content-type"], "application/problem+json");
  const body = res.json();
  assert.equal(body.type, PROBLEM + "bundle-rejected");
  assert.equal(body.module, module);
  assert.match(body.detail, pattern);
  return body;
}

test("a bundle importing json, text and wasm modules links: 200 with its handlers", async () => {
  const res = await validate({
    "index.js": {
      js: `import cfg from "./cfg.json"; import t from "./t.txt"; import w from "./add.wasm";
           const { add } = new WebAssembly.Instance(w).exports;
           export default { fetch() { return new Response(t + cfg.n + add(1, 2)) } }`,
    },
    "cfg.json": { json: { n: 1 } },
    "t.txt": { text: "hi" },
    "add.wasm": { wasm: ADD_WASM },
  }, "index.js", { cpuMs: 50, subRequests: 5 });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json(), { status: "ok", handlers: ["fetch"] });
});

test("class entrypoints and scheduled-only modules count as handlers", async () => {
  const cls = await validate({
    "index.js": {
      js: `import { WorkerEntrypoint } from "cloudflare:workers";
           export default class extends WorkerEntrypoint { fetch() { return new Response("x") } }`,
    },
  });
  assert.deepEqual(cls.json().handlers, ["fetch"]);
  const cron = await validate({ "index.js": { js: "export default { scheduled() {} }" } });
  assert.deepEqual(cron.json().handlers, ["scheduled"]);
});

test("a syntax error in an imported module: 422 with the runtime's message and that module", async () => {
  const res = await validate({
    "index.js": { js: `import "./lib/util.js"; export default { fetch() {} }` },
    "lib/util.js": { js: "export const x = ;" },
  });
  assertRejected(res, "lib/util.js", /SyntaxError: Unexpected token ';'/);
});

test("an import of a missing module: 422 naming the importer", async () => {
  const res = await validate({ "index.js": { js: `import x from "./nope.js"; export default { fetch() {} }` } });
  assertRejected(res, "index.js", /No such module "nope.js"/);
});

test("an import of a missing export: 422", async () => {
  const res = await validate({
    "index.js": { js: `import { foo } from "./lib.js"; export default { fetch() {} }` },
    "lib.js": { js: "export const bar = 1;" },
  });
  assertRejected(res, "index.js", /does not provide an export named 'foo'/);
});

test("no fetch or scheduled handler: 422", async () => {
  const res = await validate({ "index.js": { js: "export default { hello() {} }" } });
  assertRejected(res, "index.js", /does not export a fetch\(\) or scheduled\(\) function/);
});

test("top-level I/O is refused by the runtime (no network while validating)", async () => {
  const res = await validate({
    "index.js": { js: `await fetch("http://127.0.0.1:1/"); export default { fetch() {} }` },
  });
  assertRejected(res, "index.js", /Disallowed operation called within global scope/);
});

test("the probe module name is reserved; malformed bodies are 400; unsigned is 401", async () => {
  const reserved = await validate({
    "index.js": { js: "export default { fetch() {} }" },
    "__plugyard_probe__.js": { js: "" },
  });
  assert.equal(reserved.status, 400, reserved.text);
  const bad = await signedRequest(gw, { method: "POST", path: "/_plugyard/validate", body: { bundle: {} } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json().type, PROBLEM + "invalid-bundle");
  const unsigned = await rawRequest(gw.port, { method: "POST", path: "/_plugyard/validate", body: "{}" });
  assert.equal(unsigned.status, 401);
  const wrongMethod = await signedRequest(gw, { method: "GET", path: "/_plugyard/validate" });
  assert.equal(wrongMethod.status, 405);
});

test("pushed secrets reach the plugin's env and win over a var of the same name", async () => {
  const bundle = makeBundle(
    `export default { fetch(r, env) { return new Response(env.GREETING + " " + env.TOKEN + " " + env.SHADOW) } }`,
  );
  const body = pushBody({
    tenant: "sec", namespace: "prod", revision: 1,
    routes: [{ pattern: "sec.test/*", plugin: "p" }],
    plugins: { p: { bundle, vars: { GREETING: "hi", SHADOW: "var" } } },
  });
  body.plugins.p.secrets = { TOKEN: "s3cr3t", SHADOW: "secret" };
  const res = await push(gw, body);
  assert.equal(res.status, 200, res.text);
  assert.equal((await get(gw, "sec.test", "/")).text, "hi s3cr3t secret");
  body.revision = 2;
  body.plugins.p.secrets = { TOKEN: 5 };
  const bad = await push(gw, body);
  assert.equal(bad.status, 400);
  assert.match(bad.json().detail, /secrets.TOKEN must be a string/);
});
