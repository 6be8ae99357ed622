/**
 * Plugin logs captured inside the plugin isolate (src/plugin-shim.js) and recorded by the
 * gateway's `PluginLogs` entrypoint (src/plugin-logs.js), through the real gateway: console lines
 * at module scope, in fetch and in waitUntil tasks, exceptions with their stack, unhandled
 * rejections, both default-export forms, named exports, no call back into the gateway for a
 * request that logs nothing, and no way to log as another plugin.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { get, makeBundle, push, pushBody, sha256, signedRequest } from "./client.js";
import { removeStorageDir, startGateway } from "./workerd.js";

const INGEST_PATH = "/v1/ingest/metrics";
const SECRET = "plugin-logs-test-secret";
const TOKEN = "tok_0123456789abcdef";

/** Accepts every batch (signatures are checked in metrics.test.js). */
class Receiver {
  constructor() {
    /** @type {Map<string, any>} */
    this.batches = new Map();
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const batch = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        this.batches.set(batch.batch_id, batch);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: "stored", batch_id: batch.batch_id }));
      });
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${this.server.address().port}${INGEST_PATH}`;
  }

  /** @param {string} tenant */
  logs(tenant) {
    return [...this.batches.values()].flatMap((b) => b.logs).filter((l) => l.tenant === tenant);
  }

  /** @param {string} tenant */
  rows(tenant) {
    return [...this.batches.values()].flatMap((b) => b.rows).filter((r) => r.tenant === tenant);
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/** Polls `probe` until truthy (bounded). */
async function waitFor(probe, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** @type {Receiver} */ let receiver;
/** @type {import("./workerd.js").Gateway} */ let gw;

before(async () => {
  receiver = new Receiver();
  const ingestUrl = await receiver.listen();
  gw = await startGateway({
    secret: SECRET,
    env: { PLUGYARD_INGEST_URL: ingestUrl, PLUGYARD_METRICS_FLUSH_MS: "100" },
  });
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
  await receiver.close();
});

/**
 * Pushes one namespace of `tenant` with plugin `p` (TOKEN is a secret var) routed at `host`.
 * @returns {Promise<string>} the version hash.
 */
async function pushPlugin(tenant, host, code, { modules = {}, flags = [] } = {}) {
  const bundle = makeBundle(code, modules);
  bundle.bundle.compatibilityFlags = flags;
  bundle.hash = sha256(JSON.stringify(bundle.bundle));
  const body = pushBody({
    tenant, namespace: "prod", revision: 1,
    routes: [{ pattern: `${host}/*`, plugin: "p" }],
    plugins: { p: { bundle, vars: { TOKEN } } },
  });
  body.plugins.p.secret_names = ["TOKEN"];
  const res = await push(gw, body);
  assert.equal(res.status, 200, res.text);
  return bundle.hash;
}

/** The gateway's count of `PluginLogs` calls. */
async function logCalls() {
  const res = await signedRequest(gw, { path: "/_plugyard/health" });
  assert.equal(res.status, 200, res.text);
  return res.json().metrics.isolate.log_calls;
}

test("console lines at module scope, in fetch and in waitUntil reach the plugin's logs, masked", async () => {
  const version = await pushPlugin("pl-a", "a.logs.test", `
console.info("module loaded");
export default {
  async fetch(request, env, ctx) {
    console.log("token is", env.TOKEN, { n: 1 });
    ctx.waitUntil(new Promise((r) => setTimeout(r, 50)).then(() => console.warn("after the response")));
    return new Response("ok");
  },
};`);
  const res = await get(gw, "a.logs.test", "/");
  assert.equal(res.status, 200);
  assert.equal(res.text, "ok");
  await waitFor(() => receiver.logs("pl-a").length >= 3, "three log lines");
  const logs = receiver.logs("pl-a");
  const byMessage = Object.fromEntries(logs.map((l) => [l.message, l]));
  assert.equal(byMessage["module loaded"]?.level, "info");
  assert.equal(byMessage['token is [secret] {"n":1}']?.level, "log");
  assert.equal(byMessage["after the response"]?.level, "warn");
  for (const line of logs) {
    assert.deepEqual(
      [line.namespace, line.plugin, line.version, line.kind, line.stack],
      ["prod", "p", version, "log", null],
    );
    assert.ok(Number.isInteger(line.at) && line.at > 0);
  }
  assert.ok(!JSON.stringify([...receiver.batches.values()]).includes(TOKEN), "a secret left the gateway");
});

test("a thrown exception reaches the logs with its stack; outcomes are counted per request", async () => {
  await pushPlugin("pl-b", "b.logs.test", `
function deepHelper(token) {
  throw new TypeError("bad token " + token);
}
export default {
  async fetch(request, env, ctx) {
    // A background task that fails after the response: followed through ctx.waitUntil.
    if (new URL(request.url).pathname === "/background") {
      ctx.waitUntil(new Promise((r) => setTimeout(r, 20)).then(() => { throw new SyntaxError("background job failed"); }));
      return new Response("accepted");
    }
    // What Cloudflare's runtime throws when a plugin runs out of CPU (workerd does not enforce it).
    if (new URL(request.url).pathname === "/cpu") throw new Error("Worker exceeded CPU time limit.");
    if (new URL(request.url).pathname === "/reject") {
      Promise.reject(new RangeError("nobody waits for " + env.TOKEN));
      return new Response("rejected later");
    }
    deepHelper(env.TOKEN);
  },
};`);
  assert.equal((await get(gw, "b.logs.test", "/")).status, 502);
  assert.equal((await get(gw, "b.logs.test", "/reject")).status, 200);
  assert.equal((await get(gw, "b.logs.test", "/cpu")).status, 502);
  assert.equal((await get(gw, "b.logs.test", "/background")).status, 200);
  await waitFor(() => receiver.logs("pl-b").filter((l) => l.kind === "exception").length >= 3, "three exceptions");
  const exceptions = receiver.logs("pl-b").filter((l) => l.kind === "exception");
  const thrown = exceptions.find((l) => l.message.startsWith("TypeError"));
  assert.equal(thrown.message, "TypeError: bad token [secret]");
  assert.equal(thrown.level, "error");
  assert.match(thrown.stack, /deepHelper/);
  assert.match(thrown.stack, /index\.js/);
  assert.ok(!thrown.stack.includes(TOKEN));
  const rejected = exceptions.find((l) => l.message.startsWith("RangeError"));
  assert.equal(rejected.message, "RangeError: nobody waits for [secret]");
  assert.ok(exceptions.some((l) => l.message === "SyntaxError: background job failed"), "the failed waitUntil task");
  await waitFor(() => receiver.rows("pl-b").reduce((n, r) => n + r.requests, 0) === 4, "four requests");
  const outcomes = receiver.rows("pl-b").reduce((o, r) => {
    for (const [k, v] of Object.entries(r.outcomes)) o[k] = (o[k] ?? 0) + v;
    return o;
  }, {});
  assert.deepEqual(outcomes, { exception: 1, ok: 2, exceededCpu: 1 });
});

test("a request that logs nothing makes no call back into the gateway", async () => {
  await pushPlugin("pl-c", "c.logs.test", `
export default {
  async fetch(request, env, ctx) {
    const path = new URL(request.url).pathname;
    if (path !== "/bare") ctx.waitUntil(Promise.resolve());
    if (path === "/say") console.log("said");
    return new Response("quiet");
  },
};`);
  assert.equal((await get(gw, "c.logs.test", "/")).status, 200); // loads the isolate
  await new Promise((r) => setTimeout(r, 300));
  const before = await logCalls();
  // With and without waitUntil tasks (the shim sends at different points).
  for (let i = 0; i < 5; i++) assert.equal((await get(gw, "c.logs.test", "/")).status, 200);
  for (let i = 0; i < 5; i++) assert.equal((await get(gw, "c.logs.test", "/bare")).status, 200);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await logCalls(), before, "a silent request called PluginLogs");
  assert.equal((await get(gw, "c.logs.test", "/say")).status, 200);
  await waitFor(async () => (await logCalls()) === before + 1, "one call for the request that logged");
  await waitFor(() => receiver.logs("pl-c").some((l) => l.message === "said"), "the line");
});

test("lines of concurrent requests all arrive; a flood is capped in the isolate and counted", async () => {
  await pushPlugin("pl-g", "g.logs.test", `
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") || 1);
    for (let i = 0; i < n; i++) console.log("line", url.searchParams.get("id"), i);
    return new Response("ok");
  },
};`);
  const statuses = await Promise.all(
    Array.from({ length: 20 }, (_, i) => get(gw, "g.logs.test", `/?id=r${i}`).then((r) => r.status)),
  );
  assert.deepEqual(statuses, new Array(20).fill(200));
  await waitFor(() => receiver.logs("pl-g").length === 20, "20 lines");
  const seen = new Set(receiver.logs("pl-g").map((l) => l.message));
  for (let i = 0; i < 20; i++) assert.ok(seen.has(`line r${i} 0`), `line r${i} 0`);

  const droppedBefore = [...receiver.batches.values()].reduce((n, b) => n + b.dropped.logs, 0);
  assert.equal((await get(gw, "g.logs.test", "/?id=flood&n=600")).status, 200);
  await waitFor(() => receiver.logs("pl-g").length === 520, "500 more lines");
  await waitFor(
    () => [...receiver.batches.values()].reduce((n, b) => n + b.dropped.logs, 0) === droppedBefore + 100,
    "100 lines counted as dropped",
  );
  const flood = receiver.logs("pl-g").filter((l) => l.message.startsWith("line flood "));
  assert.equal(flood.length, 500);
  assert.ok(flood.some((l) => l.message === "line flood 499"));
});

test("a plugin cannot write logs as another plugin", async () => {
  await pushPlugin("pl-victim", "victim.logs.test", `export default { fetch() { return new Response("v"); } };`);
  await pushPlugin("pl-forger", "forger.logs.test", `
export default {
  async fetch(request, env) {
    await env.PLUGYARD_LOGS.record({
      tenant: "pl-victim",
      logs: [{ level: "error", message: "forged", timestamp: 1, tenant: "pl-victim", plugin: "x" }],
      exceptions: [{ name: "Forged", message: "forged", stack: "s", tenant: "pl-victim" }],
      dropped: -5,
    });
    return new Response(typeof env.PLUGYARD_LOGS);
  },
};`);
  assert.equal((await get(gw, "victim.logs.test", "/")).status, 200);
  assert.equal((await get(gw, "forger.logs.test", "/")).status, 200);
  await waitFor(() => receiver.logs("pl-forger").length >= 2, "the forger's entries");
  for (const line of receiver.logs("pl-forger")) {
    assert.equal(line.tenant, "pl-forger");
    assert.equal(line.plugin, "p");
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(receiver.logs("pl-victim"), []);
  for (const batch of receiver.batches.values()) assert.ok(batch.dropped.logs >= 0);
});

test("class-based default exports and named exports keep working", async () => {
  await pushPlugin("pl-d", "d.logs.test", `
import { WorkerEntrypoint } from "cloudflare:workers";
import { answer, helper } from "./helper.js";
export class Greeter extends WorkerEntrypoint {
  greet(name) {
    console.log("greeting", name);
    return "hello " + name;
  }
}
export default class extends WorkerEntrypoint {
  async fetch(request) {
    const greeting = await this.ctx.exports.Greeter.greet("class");
    console.log("class fetch", this.env.TOKEN.length, helper());
    if (new URL(request.url).pathname === "/throw") throw new Error("class failed");
    return new Response(greeting + " " + answer);
  }
}`, {
    modules: { "helper.js": { js: `export const answer = 42;\nexport function helper() { return "helped"; }` } },
    flags: ["enable_ctx_exports"],
  });
  const res = await get(gw, "d.logs.test", "/");
  assert.equal(res.text, "hello class 42");
  assert.equal(res.status, 200);
  assert.equal((await get(gw, "d.logs.test", "/throw")).status, 502);
  await waitFor(() => receiver.logs("pl-d").some((l) => l.kind === "exception"), "the exception");
  const messages = receiver.logs("pl-d").map((l) => l.message);
  assert.ok(messages.includes("class fetch 20 helped"), JSON.stringify(messages));
  assert.ok(messages.includes("greeting class"), JSON.stringify(messages));
  assert.ok(messages.includes("Error: class failed"), JSON.stringify(messages));
});

test("object default exports keep `this` and their other handlers", async () => {
  await pushPlugin("pl-e", "e.logs.test", `
export default {
  prefix: "obj",
  label() { return this.prefix + "-label"; },
  async fetch() { return new Response(this.label()); },
  async scheduled() {},
};`);
  const res = await get(gw, "e.logs.test", "/");
  assert.equal(res.status, 200);
  assert.equal(res.text, "obj-label");
});

test("module names starting with __plugyard are refused", async () => {
  const bundle = makeBundle(`export default { fetch() { return new Response("x"); } };`, {
    "__plugyard_main.js": { js: "export default {}" },
  });
  const body = pushBody({
    tenant: "pl-f", namespace: "prod", revision: 1,
    routes: [{ pattern: "f.logs.test/*", plugin: "p" }],
    plugins: { p: { bundle } },
  });
  const res = await push(gw, body);
  assert.equal(res.status, 400, res.text);
  assert.match(res.text, /reserved/);
});
