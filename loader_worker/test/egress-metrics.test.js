/**
 * Egress counts in the metrics batches: every outbound fetch a plugin makes is counted as
 * `allowed` or `blocked` per (tenant, namespace, destination host, minute), hosts beyond the
 * per-minute bound fold into `(other)`, and a lost batch's egress counts are reported as dropped.
 * The receiver is a bare ingest endpoint (signature checks are tested in metrics.test.js).
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { get, makeBundle, push, pushBody, signedRequest } from "./client.js";
import { removeStorageDir, startGateway } from "./workerd.js";

const INGEST_PATH = "/v1/ingest/metrics";
const SECRET = "egress-metrics-secret";
const MAX_EGRESS_HOSTS = 20;

// Fetches `?url=`; answers 599 when the egress policy refused it.
const PROBE = `export default {
  async fetch(request) {
    const target = new URL(request.url).searchParams.get("url");
    try {
      const res = await fetch(target);
      return new Response("fetched " + await res.text());
    } catch (error) {
      return new Response("blocked " + String(error && error.message), { status: 599 });
    }
  },
};`;

class Receiver {
  constructor() {
    /** @type {any[]} */
    this.accepted = [];
    this.failing = false;
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        if (this.failing) {
          res.writeHead(503).end();
          return;
        }
        const batch = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        if (!this.accepted.some((b) => b.batch_id === batch.batch_id)) this.accepted.push(batch);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: "stored", batch_id: batch.batch_id }));
      });
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${this.server.address().port}${INGEST_PATH}`;
  }

  /** @param {string} tenant @returns {any[]} the egress rows of a tenant. */
  egress(tenant) {
    return this.accepted.flatMap((b) => b.egress ?? []).filter((r) => r.tenant === tenant);
  }

  /** @param {string} tenant @returns {Record<string, {allowed: number, blocked: number}>} per host. */
  byHost(tenant) {
    const out = {};
    for (const row of this.egress(tenant)) {
      const entry = (out[row.host] ??= { allowed: 0, blocked: 0 });
      entry.allowed += row.allowed;
      entry.blocked += row.blocked;
    }
    return out;
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

async function waitFor(probe, what, timeoutMs = 20_000) {
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
  return res.json();
}

async function deploy(gw, tenant, host, egress) {
  const body = pushBody({
    tenant, namespace: "prod", revision: 1,
    routes: [{ pattern: `${host}/*`, plugin: "probe" }],
    plugins: { probe: { bundle: makeBundle(PROBE) } },
  });
  body.egress = egress;
  const res = await push(gw, body);
  assert.equal(res.status, 200, res.text);
}

let gw, receiver, target;
before(async () => {
  receiver = new Receiver();
  const ingestUrl = await receiver.listen();
  target = http.createServer((req, res) => res.end("target"));
  await new Promise((resolve) => target.listen(0, "127.0.0.1", resolve));
  gw = await startGateway({
    secret: SECRET,
    env: { PLUGYARD_INGEST_URL: ingestUrl, PLUGYARD_METRICS_FLUSH_MS: "100", PLUGYARD_EGRESS_PRIVATE: "1" },
  });
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
  await receiver.close();
  target.close();
});

const probe = (host, url) => get(gw, host, "/?" + new URLSearchParams({ url }));

test("allowed and blocked fetches are counted per namespace and destination host", async () => {
  const allowedHost = `127.0.0.1:${target.address().port}`;
  await deploy(gw, "em-a", "a.egress-metrics.test", { allow: [allowedHost], methods: null });
  for (let i = 0; i < 3; i++) {
    const res = await probe("a.egress-metrics.test", `http://${allowedHost}/x`);
    assert.equal(res.text, "fetched target");
  }
  for (let i = 0; i < 2; i++) {
    assert.equal((await probe("a.egress-metrics.test", "http://Blocked.Example/x")).status, 599);
  }
  await waitFor(() => {
    const hosts = receiver.byHost("em-a");
    return hosts[allowedHost]?.allowed === 3 && hosts["blocked.example"]?.blocked === 2;
  }, "3 allowed and 2 blocked egress requests");
  assert.deepEqual(receiver.byHost("em-a"), {
    [allowedHost]: { allowed: 3, blocked: 0 },
    "blocked.example": { allowed: 0, blocked: 2 },
  });
  for (const row of receiver.egress("em-a")) {
    assert.equal(row.namespace, "prod");
    assert.equal(row.minute % 60, 0);
  }
  // The process-lifetime counters in the signed health still agree.
  assert.deepEqual((await health(gw)).egress["em-a/prod"], { allowed: 3, denied: 2 });
});

test("hosts beyond the per-minute bound are counted under (other)", async () => {
  await deploy(gw, "em-b", "b.egress-metrics.test", { allow: [], methods: null });
  const extra = 5;
  // Each call is blocked before any network I/O, so distinct names cost nothing.
  for (let i = 0; i < MAX_EGRESS_HOSTS + extra; i++) {
    assert.equal((await probe("b.egress-metrics.test", `http://h${i}.invalid/`)).status, 599);
  }
  await waitFor(
    () => receiver.egress("em-b").reduce((n, r) => n + r.blocked, 0) === MAX_EGRESS_HOSTS + extra,
    "every blocked request of em-b",
  );
  const hosts = receiver.byHost("em-b");
  // A minute boundary during the loop restarts the bound: at least `extra` fewer in (other).
  assert.ok(Object.keys(hosts).length <= 2 * MAX_EGRESS_HOSTS + 1, JSON.stringify(hosts));
  const minutes = new Set(receiver.egress("em-b").map((r) => r.minute));
  if (minutes.size === 1) {
    assert.equal(Object.keys(hosts).length, MAX_EGRESS_HOSTS + 1);
    assert.deepEqual(hosts["(other)"], { allowed: 0, blocked: extra });
  }
});

test("egress counts of a dropped batch are reported as dropped", async () => {
  const local = new Receiver();
  const url = await local.listen();
  const gw2 = await startGateway({
    secret: SECRET,
    env: { PLUGYARD_INGEST_URL: url, PLUGYARD_METRICS_FLUSH_MS: "100", PLUGYARD_METRICS_MAX_PENDING: "1" },
  });
  try {
    await deploy(gw2, "em-c", "c.egress-metrics.test", { allow: [], methods: null });
    local.failing = true;
    let sent = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2; i++) {
        const res = await get(gw2, "c.egress-metrics.test", "/?url=http://nowhere.invalid/");
        assert.equal(res.status, 599);
        sent += 1;
      }
      await waitFor(async () => (await health(gw2)).metrics.isolate.rows === 0, "a sealed round");
    }
    await waitFor(async () => (await health(gw2)).metrics.dropped.egress > 0, "dropped egress counts");
    local.failing = false;
    const blocked = () => local.egress("em-c").reduce((n, r) => n + r.blocked, 0);
    const dropped = () => local.accepted.reduce((n, b) => n + (b.dropped.egress ?? 0), 0);
    await waitFor(() => blocked() + dropped() === sent, "every egress request accounted for");
    assert.ok(dropped() > 0);
    assert.equal((await health(gw2)).metrics.dropped_reported.egress, dropped());
  } finally {
    await gw2.stop();
    removeStorageDir(gw2.storageDir);
    await local.close();
  }
});
