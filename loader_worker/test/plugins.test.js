import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { get, makeBundle, push, pushBody } from "./client.js";
import { removeStorageDir, startGateway } from "./workerd.js";

const PROBLEM = "https://plugyard.dev/problems/";

/** @type {import("./workerd.js").Gateway} */
let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
});

async function pushOk(body) {
  const res = await push(gw, body);
  assert.equal(res.status, 200, res.text);
}

function assertProblem(res, status, slug) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers["content-type"], "application/problem+json");
  const body = res.json();
  assert.equal(body.type, PROBLEM + slug);
  return body;
}

test("no route → 404 no-route problem", async () => {
  assertProblem(await get(gw, "nowhere.test", "/"), 404, "no-route");
});

test("plugin without an active version → 503 no-active-version", async () => {
  await pushOk(
    pushBody({
      tenant: "drafty",
      namespace: "prod",
      revision: 1,
      routes: [{ pattern: "draft.test/*", plugin: "draft" }],
      plugins: { draft: { bundle: null } },
    }),
  );
  assertProblem(await get(gw, "draft.test", "/"), 503, "no-active-version");
});

test("a throwing plugin → 502 while another tenant keeps answering", async () => {
  const secret = "internal detail 42";
  const thrower = makeBundle(`export default { fetch() { throw new Error(${JSON.stringify(secret)}) } }`);
  const good = makeBundle(`export default { fetch() { return new Response("fine") } }`);
  await pushOk(pushBody({
    tenant: "bad", namespace: "prod", revision: 1,
    routes: [{ pattern: "bad.test/*", plugin: "boom" }],
    plugins: { boom: { bundle: thrower } },
  }));
  await pushOk(pushBody({
    tenant: "good", namespace: "prod", revision: 1,
    routes: [{ pattern: "good.test/*", plugin: "ok" }],
    plugins: { ok: { bundle: good } },
  }));
  const [bad, ok] = await Promise.all([get(gw, "bad.test", "/"), get(gw, "good.test", "/")]);
  const problem = assertProblem(bad, 502, "plugin-failed");
  assert.ok(!bad.text.includes(secret), "the plugin's message must not leak");
  assert.ok(!/at .*index\.js/.test(problem.detail));
  assert.equal(ok.status, 200);
  assert.equal(ok.text, "fine");
  // Still healthy afterwards.
  assertProblem(await get(gw, "bad.test", "/again"), 502, "plugin-failed");
  assert.equal((await get(gw, "good.test", "/")).text, "fine");
});

test("a bundle with a syntax error → 502, the gateway keeps serving", async () => {
  const broken = makeBundle(`export default { fetch() { return new Response("x" }`);
  await pushOk(pushBody({
    tenant: "syntax", namespace: "prod", revision: 1,
    routes: [{ pattern: "syntax.test/*", plugin: "broken" }],
    plugins: { broken: { bundle: broken } },
  }));
  assertProblem(await get(gw, "syntax.test", "/"), 502, "plugin-failed");
  assertProblem(await get(gw, "syntax.test", "/"), 502, "plugin-failed");
  assert.equal((await get(gw, "good.test", "/")).text, "fine");
});

test("identical code and names in two tenants run in separate isolates with their own env", async () => {
  const code = makeBundle(`
    let isolate; // random values are not allowed at global scope
    let count = 0;
    export default {
      fetch(request, env) {
        isolate ??= crypto.randomUUID();
        count += 1;
        return Response.json({ greeting: env.GREETING, isolate, count });
      },
    };`);
  for (const [tenant, greeting] of [["t-one", "hello from one"], ["t-two", "hello from two"]]) {
    await pushOk(pushBody({
      tenant, namespace: "production", revision: 1,
      routes: [{ pattern: `${tenant}.twins.test/*`, plugin: "hello" }],
      plugins: { hello: { bundle: code, vars: { GREETING: greeting } } },
    }));
  }
  const one = (await get(gw, "t-one.twins.test", "/")).json();
  const two = (await get(gw, "t-two.twins.test", "/")).json();
  const oneAgain = (await get(gw, "t-one.twins.test", "/")).json();
  assert.equal(one.greeting, "hello from one");
  assert.equal(two.greeting, "hello from two");
  assert.notEqual(one.isolate, two.isolate);
  assert.equal(oneAgain.isolate, one.isolate, "the same id reuses the warm isolate");
  assert.deepEqual([one.count, two.count, oneAgain.count], [1, 1, 2]);
});

test("new vars get a new isolate", async () => {
  const code = makeBundle(`let isolate;
    export default { fetch(r, env) { isolate ??= crypto.randomUUID(); return Response.json({ v: env.V, isolate }) } }`);
  const body = (revision, v) => pushBody({
    tenant: "vars", namespace: "prod", revision,
    routes: [{ pattern: "vars.test/*", plugin: "p" }],
    plugins: { p: { bundle: code, vars: { V: v } } },
  });
  await pushOk(body(1, "a"));
  const first = (await get(gw, "vars.test", "/")).json();
  await pushOk(body(2, "b"));
  const second = (await get(gw, "vars.test", "/")).json();
  assert.equal(first.v, "a");
  assert.equal(second.v, "b");
  assert.notEqual(first.isolate, second.isolate);
});

// (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
const ADD_WASM = Buffer.from(
  "0061736d0100000001070160027f7f017f030201000707010361646400000a09010700200020016a0b",
  "hex",
);

test("js, cjs, json, text, data and wasm modules in one bundle", async () => {
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  const bundle = makeBundle(
    `import { shout } from "./lib.js";
     import config from "./config.json";
     import message from "./message.txt";
     import blob from "./blob.bin";
     import legacy from "./legacy.cjs";
     import addModule from "./add.wasm";
     export default {
       fetch() {
         return Response.json({
           shout: shout(message.trim()),
           config,
           blob: [...new Uint8Array(blob)],
           legacy: legacy.answer,
           sum: new WebAssembly.Instance(addModule).exports.add(2, 3),
         });
       },
     };`,
    {
      "lib.js": { js: "export function shout(s) { return s.toUpperCase() + '!' }" },
      "config.json": { json: { color: "teal", sizes: [1, 2] } },
      "message.txt": { text: "hello text\n" },
      "blob.bin": { data: bytes.toString("base64") },
      "legacy.cjs": { cjs: "module.exports = { answer: 42 };" },
      "add.wasm": { wasm: ADD_WASM.toString("base64") },
    },
  );
  await pushOk(pushBody({
    tenant: "kinds", namespace: "prod", revision: 1,
    routes: [{ pattern: "kinds.test/*", plugin: "k" }],
    plugins: { k: { bundle } },
  }));
  const res = await get(gw, "kinds.test", "/");
  assert.equal(res.status, 200, res.text + gw.output());
  assert.deepEqual(res.json(), {
    shout: "HELLO TEXT!",
    config: { color: "teal", sizes: [1, 2] },
    blob: [...bytes],
    legacy: 42,
    sum: 5,
  });
});

test("plugins have no network (globalOutbound: null)", async () => {
  const bundle = makeBundle(`export default { async fetch() {
    try { await fetch("http://127.0.0.1:${gw.port}/_plugyard/health"); return new Response("reached") }
    catch (e) { return new Response("blocked") } } }`);
  await pushOk(pushBody({
    tenant: "net", namespace: "prod", revision: 1,
    routes: [{ pattern: "net.test/*", plugin: "n" }],
    plugins: { n: { bundle } },
  }));
  const res = await get(gw, "net.test", "/");
  assert.equal(res.text, "blocked");
});
