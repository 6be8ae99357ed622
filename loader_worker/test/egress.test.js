import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { after, before, test } from "node:test";
import { get, makeBundle, push, pushBody, signedRequest } from "./client.js";
import { removeStorageDir, startGateway } from "./workerd.js";
import { egressDenial, entryMatches } from "../src/egress-policy.js";

/** A loopback HTTP server that counts the requests it receives. */
async function countingServer(name) {
  const server = http.createServer((req, res) => {
    server.hits += 1;
    res.end(`${name} ${req.method}`);
  });
  server.hits = 0;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** A loopback TCP server that counts connections (for connect()). */
async function tcpServer() {
  const server = net.createServer((socket) => {
    server.hits += 1;
    socket.end("hello");
  });
  server.hits = 0;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

// The plugin tries to reach `?url=` with `?method=`, or opens a TCP socket to `?tcp=host:port`.
const PROBE = `
import { connect } from "cloudflare:sockets";
export default {
  async fetch(request) {
    const q = new URL(request.url).searchParams;
    try {
      if (q.get("tcp")) {
        const socket = connect(q.get("tcp"));
        await socket.opened;
        const reader = socket.readable.getReader();
        const { value } = await reader.read();
        return new Response("tcp " + new TextDecoder().decode(value));
      }
      const res = await fetch(q.get("url"), { method: q.get("method") || "GET" });
      return new Response("fetched " + await res.text());
    } catch (error) {
      return new Response("blocked " + String(error && error.message), { status: 599 });
    }
  },
};`;

let gw, allowed, forbidden, tcp;
before(async () => {
  // Loopback targets need the private-network egress service (production: public only).
  gw = await startGateway({ env: { PLUGYARD_EGRESS_PRIVATE: "1" } });
  allowed = await countingServer("allowed");
  forbidden = await countingServer("forbidden");
  tcp = await tcpServer();
});
after(async () => {
  await gw.stop();
  removeStorageDir(gw.storageDir);
  for (const s of [allowed, forbidden, tcp]) s.close();
});

async function deploy(tenant, host, egress, revision = 1) {
  const body = pushBody({
    tenant, namespace: "prod", revision,
    routes: [{ pattern: `${host}/*`, plugin: "probe" }],
    plugins: { probe: { bundle: makeBundle(PROBE) } },
  });
  if (egress !== undefined) body.egress = egress;
  const res = await push(gw, body);
  assert.equal(res.status, 200, res.text);
}

const target = (server, path = "/x") => `http://127.0.0.1:${server.address().port}${path}`;
const probe = (host, query) => get(gw, host, "/?" + new URLSearchParams(query));

test("host matching: exact, *.suffix, ports", () => {
  assert.ok(entryMatches("api.example.com", "api.example.com", "443"));
  assert.ok(!entryMatches("api.example.com", "x.api.example.com", "443"));
  assert.ok(entryMatches("*.example.com", "a.b.example.com", "80"));
  assert.ok(!entryMatches("*.example.com", "example.com", "80"));
  assert.ok(!entryMatches("*.example.com", "badexample.com", "80"));
  assert.ok(entryMatches("127.0.0.1:81", "127.0.0.1", "81"));
  assert.ok(!entryMatches("127.0.0.1:81", "127.0.0.1", "80"));
  const policy = { allow: ["api.test"], methods: ["GET"] };
  assert.equal(egressDenial(policy, new URL("http://api.test/"), "GET"), null);
  assert.match(egressDenial(policy, new URL("http://api.test/"), "POST"), /method POST/);
  assert.match(egressDenial({ allow: [], methods: null }, new URL("http://x.test/"), "GET"), /deny all/);
});

test("deny-all (no policy pushed): no host is reachable, by fetch or connect()", async () => {
  const host = "deny.egress.test";
  await deploy("egress-deny", host);
  const res = await probe(host, { url: target(allowed) });
  assert.equal(res.status, 599, res.text);
  assert.match(res.text, /egress policy of namespace egress-deny\/prod/);
  assert.match(res.text, new RegExp(`host "127.0.0.1:${allowed.address().port}" is not allowed \\(deny all\\)`));
  const sock = await probe(host, { tcp: `127.0.0.1:${tcp.address().port}` });
  assert.equal(sock.status, 599, sock.text);
  assert.equal(allowed.hits, 0);
  assert.equal(tcp.hits, 0);
});

test("allowlist: only the listed host:port is reached; methods are enforced; connect() stays blocked", async () => {
  const host = "allow.egress.test";
  const entry = `127.0.0.1:${allowed.address().port}`;
  await deploy("egress-allow", host, { allow: [entry], methods: ["GET"] });
  const before = allowed.hits;

  const ok = await probe(host, { url: target(allowed) });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.text, "fetched allowed GET");
  assert.equal(allowed.hits, before + 1);

  const denied = await probe(host, { url: target(forbidden) });
  assert.equal(denied.status, 599, denied.text);
  assert.match(denied.text, new RegExp(`not allowed \\(allowlist ${entry}\\)`));
  assert.equal(forbidden.hits, 0);

  const post = await probe(host, { url: target(allowed), method: "POST" });
  assert.equal(post.status, 599, post.text);
  assert.match(post.text, /method POST/);
  assert.equal(allowed.hits, before + 1);

  const sock = await probe(host, { tcp: entry });
  assert.equal(sock.status, 599, sock.text);
  assert.equal(tcp.hits, 0);

  // Counted per namespace in the signed health answer.
  const health = (await signedRequest(gw, { path: "/_plugyard/health" })).json();
  assert.equal(health.egress["egress-allow/prod"].allowed, 1);
  assert.equal(health.egress["egress-allow/prod"].denied, 2); // connect() never reaches the entrypoint
});

test("a new policy applies to an already loaded isolate", async () => {
  const host = "change.egress.test";
  await deploy("egress-change", host, { allow: [], methods: null });
  assert.equal((await probe(host, { url: target(allowed) })).status, 599);
  await deploy("egress-change", host, { allow: [`127.0.0.1:${allowed.address().port}`], methods: null }, 2);
  const res = await probe(host, { url: target(allowed) });
  assert.equal(res.status, 200, res.text);
});

test("a malformed egress member is a 400 invalid-push", async () => {
  const body = pushBody({ tenant: "egress-bad", namespace: "prod", revision: 1, routes: [], plugins: {} });
  body.egress = { allow: "everything" };
  const res = await push(gw, body);
  assert.equal(res.status, 400, res.text);
  assert.match(res.json().detail, /egress.allow/);
});
