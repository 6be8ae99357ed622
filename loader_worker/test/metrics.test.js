/**
 * Metrics and plugin logs leaving the real gateway: batches arrive signed at the ingest URL,
 * are retried with the same batch id until acknowledged, survive a gateway restart in the
 * outbox, and overflow is counted, never silently lost.
 *
 * The receiver below is the ingest side of the protocol (docs/gateway-protocol.md, "Metrics
 * ingest"): it checks the HMAC signature exactly as the control plane does and answers 200 or,
 * when told to, 503. The control plane's own ingest is tested in tests/integration.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import http from "node:http";
import { after, before, test } from "node:test";
import { DEBUG, get, makeBundle, push, pushBody, signedRequest } from "./client.js";
import { removeStorageDir, startGateway, tempStorageDir } from "./workerd.js";

const INGEST_PATH = "/v1/ingest/metrics";
const SECRET = "metrics-test-secret";
const API_KEY = "sk_live_0123456789abcdef";

class Receiver {
  constructor() {
    /** @type {any[]} every accepted batch, in arrival order (duplicates included) */
    this.accepted = [];
    /** @type {string[]} batch ids of refused attempts */
    this.refused = [];
    this.failing = false;
    this.badSignatures = 0;
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const ts = req.headers["x-plugyard-timestamp"];
        const nonce = req.headers["x-plugyard-nonce"];
        const mac = createHmac("sha256", SECRET).update(`${ts}.${nonce}.${req.method}.${req.url}.${body}`).digest("hex");
        if (req.headers["x-plugyard-signature"] !== `v1=${mac}` || req.url !== INGEST_PATH) {
          this.badSignatures += 1;
          res.writeHead(401).end();
          return;
        }
        const batch = JSON.parse(body);
        if (this.failing) {
          this.refused.push(batch.batch_id);
          res.writeHead(503).end();
          return;
        }
        this.accepted.push(batch);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: "stored", batch_id: batch.batch_id }));
      });
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${this.server.address().port}${INGEST_PATH}`;
  }

  /** Accepted batches, each batch id once. */
  unique() {
    const seen = new Map();
    for (const batch of this.accepted) if (!seen.has(batch.batch_id)) seen.set(batch.batch_id, batch);
    return [...seen.values()];
  }

  /** @param {string} tenant */
  requests(tenant) {
    let n = 0;
    for (const batch of this.unique()) for (const row of batch.rows) if (row.tenant === tenant) n += row.requests;
    return n;
  }

  droppedRequests() {
    return this.unique().reduce((n, b) => n + b.dropped.requests, 0);
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

const PLUGIN = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    console.log("handling", url.pathname, "with key", env.API_KEY);
    console.warn({ path: url.pathname });
    if (url.pathname === "/throw") throw new Error("cannot use " + env.API_KEY);
    return new Response("ok", { status: Number(url.searchParams.get("status") || 200) });
  },
};`;

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

async function health(gw) {
  const res = await signedRequest(gw, { path: "/_plugyard/health" });
  assert.equal(res.status, 200, res.text);
  return res.json().metrics;
}

/** Pushes a namespace with one plugin whose API_KEY is a secret binding. */
async function pushPlugin(gw, tenant, host) {
  const bundle = makeBundle(PLUGIN);
  const body = pushBody({
    tenant, namespace: "prod", revision: 1,
    routes: [{ pattern: `${host}/*`, plugin: "p" }],
    plugins: { p: { bundle, vars: { API_KEY } } },
  });
  body.plugins.p.secret_names = ["API_KEY"];
  const res = await push(gw, body);
  assert.equal(res.status, 200, res.text);
  return bundle.hash;
}

/** @type {Receiver} */ let receiver;
/** @type {import("./workerd.js").Gateway} */ let gw;
let ingestUrl = "";

before(async () => {
  receiver = new Receiver();
  ingestUrl = await receiver.listen();
  gw = await startGateway({
    secret: SECRET,
    env: { PLUGYARD_INGEST_URL: ingestUrl, PLUGYARD_METRICS_FLUSH_MS: "200" },
  });
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
  await receiver.close();
});

test("requests, outcomes and masked logs arrive in signed batches", async () => {
  const version = await pushPlugin(gw, "mt-a", "a.metrics.test");
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push((await get(gw, "a.metrics.test", "/")).status);
  for (let i = 0; i < 2; i++) statuses.push((await get(gw, "a.metrics.test", "/?status=404")).status);
  const thrown = await get(gw, "a.metrics.test", "/throw");
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 404, 404]);
  assert.equal(thrown.status, 502);
  const ok = await get(gw, "a.metrics.test", "/", DEBUG);
  assert.match(String(ok.headers["server-timing"]), /^plugin;dur=\d+$/);

  await waitFor(() => receiver.requests("mt-a") === 10, "10 requests of mt-a");
  await waitFor(
    () => receiver.unique().flatMap((b) => b.rows).filter((r) => r.tenant === "mt-a")
      .reduce((n, r) => n + (r.outcomes.exception ?? 0) + (r.outcomes.ok ?? 0), 0) === 10,
    "10 outcomes",
  );
  // Logs travel apart from the counters (sent by the plugin isolate, plugin-shim.js).
  const logsOf = () => receiver.unique().flatMap((b) => b.logs).filter((l) => l.tenant === "mt-a");
  await waitFor(
    () => logsOf().filter((l) => l.level === "log").length === 10 && logsOf().some((l) => l.kind === "exception"),
    "10 log lines and the exception",
  );
  assert.equal(receiver.badSignatures, 0);
  const rows = receiver.unique().flatMap((b) => b.rows).filter((r) => r.tenant === "mt-a");
  const sum = (key) => rows.reduce((n, r) => n + r[key], 0);
  assert.equal(sum("s2xx"), 7);
  assert.equal(sum("s4xx"), 2);
  assert.equal(sum("s5xx"), 1);
  assert.equal(sum("failures"), 1);
  for (const row of rows) {
    assert.equal(row.namespace, "prod");
    assert.equal(row.plugin, "p");
    assert.equal(row.version, version);
    assert.equal(row.variant, "default");
    assert.equal(row.minute % 60, 0);
    assert.equal(row.latency.length, 14);
  }
  assert.equal(rows.reduce((n, r) => n + r.latency.reduce((a, b) => a + b, 0), 0), 10);
  assert.equal(rows.reduce((n, r) => n + (r.outcomes.exception ?? 0), 0), 1);

  const logs = receiver.unique().flatMap((b) => b.logs).filter((l) => l.tenant === "mt-a");
  const lines = logs.filter((l) => l.kind === "log");
  assert.equal(lines.filter((l) => l.level === "log").length, 10);
  assert.ok(lines.some((l) => l.level === "warn" && l.message === '{"path":"/throw"}'));
  assert.ok(lines.some((l) => l.message === "handling / with key [secret]"));
  const [exception] = logs.filter((l) => l.kind === "exception");
  assert.equal(exception.message, "Error: cannot use [secret]");
  assert.match(exception.stack, /index\.js/);
  const everything = JSON.stringify(receiver.accepted);
  assert.ok(!everything.includes(API_KEY), "a secret value left the gateway");

  const metrics = await health(gw);
  assert.equal(metrics.enabled, true);
  assert.equal(metrics.pending_batches, 0);
  assert.deepEqual(metrics.dropped, { requests: 0, logs: 0, batches: 0, egress: 0 });
  // No outbound request: the optional members stay out (older control planes refuse them).
  for (const batch of receiver.unique()) {
    assert.ok(!("egress" in batch), "a batch without outbound requests carries no egress member");
    assert.ok(!("egress" in batch.dropped));
  }
});

test("an unacknowledged batch is retried with the same id and counted once", async () => {
  await pushPlugin(gw, "mt-b", "b.metrics.test");
  receiver.failing = true;
  for (let i = 0; i < 5; i++) assert.equal((await get(gw, "b.metrics.test", "/")).status, 200);
  await waitFor(() => receiver.refused.length >= 2, "two refused attempts");
  const pending = await health(gw);
  assert.ok(pending.pending_batches >= 1, JSON.stringify(pending));
  assert.match(pending.last_error, /HTTP 503/);
  const refusedIds = new Set(receiver.refused);
  assert.ok(refusedIds.size < receiver.refused.length, "a refused batch was retried with its id");

  receiver.failing = false;
  await waitFor(() => receiver.requests("mt-b") === 5, "5 requests of mt-b");
  await waitFor(async () => (await health(gw)).pending_batches === 0, "an empty outbox");
  const deliveredIds = new Set(receiver.accepted.map((b) => b.batch_id));
  for (const id of refusedIds) assert.ok(deliveredIds.has(id), `batch ${id} was never delivered`);
  // Delivered exactly once each.
  assert.equal(receiver.accepted.length, deliveredIds.size);
});

test("pending batches survive a gateway restart", async () => {
  const storageDir = tempStorageDir();
  const local = new Receiver();
  const url = await local.listen();
  const env = { PLUGYARD_INGEST_URL: url, PLUGYARD_METRICS_FLUSH_MS: "100" };
  let first = await startGateway({ secret: SECRET, storageDir, env });
  try {
    await pushPlugin(first, "mt-c", "c.metrics.test");
    local.failing = true;
    for (let i = 0; i < 7; i++) assert.equal((await get(first, "c.metrics.test", "/")).status, 200);
    await waitFor(async () => (await health(first)).pending_batches >= 1 && local.refused.length >= 1, "a pending batch");
    await waitFor(async () => (await health(first)).isolate.rows === 0, "everything sealed");
  } finally {
    await first.stop();
  }
  local.failing = false;
  const second = await startGateway({ secret: SECRET, storageDir, env });
  try {
    // No traffic needed: the outbox re-arms delivery when it starts (here: on the health call).
    await health(second);
    await waitFor(() => local.requests("mt-c") === 7, "7 requests delivered after the restart");
  } finally {
    await second.stop();
    removeStorageDir(storageDir);
    await local.close();
  }
});

test("a full outbox drops the oldest batch and reports what it held", async () => {
  const local = new Receiver();
  const url = await local.listen();
  const gw2 = await startGateway({
    secret: SECRET,
    env: { PLUGYARD_INGEST_URL: url, PLUGYARD_METRICS_FLUSH_MS: "100", PLUGYARD_METRICS_MAX_PENDING: "2" },
  });
  try {
    await pushPlugin(gw2, "mt-d", "d.metrics.test");
    local.failing = true;
    let sent = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) {
        assert.equal((await get(gw2, "d.metrics.test", "/")).status, 200);
        sent += 1;
      }
      // Let each round be sealed as its own batch.
      await waitFor(async () => (await health(gw2)).isolate.rows === 0, "a sealed round");
    }
    const full = await health(gw2);
    assert.equal(full.pending_batches, 2);
    assert.ok(full.dropped.requests > 0 && full.dropped.batches > 0, JSON.stringify(full));
    local.failing = false;
    await waitFor(() => local.requests("mt-d") + local.droppedRequests() === sent, "every request accounted for");
    assert.ok(local.droppedRequests() > 0);
    const after = await health(gw2);
    assert.deepEqual(after.dropped, { requests: 0, logs: 0, batches: 0, egress: 0 });
    assert.equal(after.dropped_reported.requests, local.droppedRequests());
  } finally {
    await gw2.stop();
    removeStorageDir(gw2.storageDir);
    await local.close();
  }
});

test("without PLUGYARD_INGEST_URL metrics are off and requests still succeed", async () => {
  const gw3 = await startGateway();
  try {
    const bundle = makeBundle(`export default { fetch() { return new Response("plain") } }`);
    const res = await push(gw3, pushBody({
      tenant: "mt-e", namespace: "prod", revision: 1,
      routes: [{ pattern: "e.metrics.test/*", plugin: "p" }],
      plugins: { p: { bundle } },
    }));
    assert.equal(res.status, 200, res.text);
    assert.equal((await get(gw3, "e.metrics.test", "/")).text, "plain");
    assert.deepEqual(await health(gw3), { enabled: false });
  } finally {
    await gw3.stop();
    removeStorageDir(gw3.storageDir);
  }
});
