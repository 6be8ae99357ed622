import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { DEBUG, get, makeBundle, newNonce, push, pushBody, signHeaders, signedRequest } from "./client.js";
import { rawRequest, removeStorageDir, startGateway } from "./workerd.js";

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

function assertProblem(res, status, slug) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers["content-type"], "application/problem+json");
  const body = res.json();
  assert.equal(body.type, PROBLEM + slug);
  assert.equal(body.status, status);
  assert.equal(typeof body.title, "string");
  assert.equal(typeof body.instance, "string");
  return body;
}

const greeter = (text) =>
  makeBundle(`export default { fetch() { return new Response(${JSON.stringify(text)}) } }`);

describe("push", () => {
  const spec = (revision, bundle) =>
    pushBody({
      tenant: "acme",
      namespace: "production",
      revision,
      routes: [{ pattern: "shop.acme.test/api/*", plugin: "hello" }],
      plugins: { hello: { bundle } },
    });
  const v1 = greeter("hello v1");
  const v2 = greeter("hello v2");

  test("push then serve", async () => {
    const res = await push(gw, spec(1, v1));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json(), { status: "applied", revision: 1 });
    const served = await get(gw, "shop.acme.test", "/api/items", DEBUG);
    assert.equal(served.status, 200, served.text);
    assert.equal(served.text, "hello v1");
    assert.equal(served.headers["x-plugyard-version"], v1.hash.slice(0, 12));
  });

  test("a higher revision changes the response on the next request", async () => {
    const res = await push(gw, spec(2, v2));
    assert.deepEqual(res.json(), { status: "applied", revision: 2 });
    const served = await get(gw, "shop.acme.test:8080", "/api/items", DEBUG);
    assert.equal(served.text, "hello v2");
    assert.equal(served.headers["x-plugyard-version"], v2.hash.slice(0, 12));
  });

  test("an equal revision is unchanged", async () => {
    const res = await push(gw, spec(2, v1));
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { status: "unchanged", revision: 2 });
    assert.equal((await get(gw, "shop.acme.test", "/api/x")).text, "hello v2");
  });

  test("a lower revision is a 409 stale-revision with held_revision", async () => {
    const res = await push(gw, spec(1, v1));
    const body = assertProblem(res, 409, "stale-revision");
    assert.equal(body.held_revision, 2);
    assert.equal((await get(gw, "shop.acme.test", "/api/x")).text, "hello v2");
  });

  test("an epoch starts a new incarnation: a lower revision of another epoch replaces it", async () => {
    const withEpoch = (revision, bundle, epoch) => ({
      ...pushBody({
        tenant: "reborn",
        namespace: "production",
        revision,
        routes: [{ pattern: "reborn.acme.test/*", plugin: "hello" }],
        plugins: { hello: { bundle } },
      }),
      epoch,
    });
    assert.equal((await push(gw, withEpoch(5, v1, "old-id"))).status, 200);
    assertProblem(await push(gw, withEpoch(4, v2, "old-id")), 409, "stale-revision");
    const res = await push(gw, withEpoch(1, v2, "new-id"));
    assert.deepEqual(res.json(), { status: "applied", revision: 1 });
    assert.equal((await get(gw, "reborn.acme.test", "/")).text, "hello v2");
    const health = (await signedRequest(gw, { path: "/_plugyard/health" })).json();
    assert.equal(health.namespaces["reborn/production"], 1);
    assert.equal(health.epochs["reborn/production"], "new-id");
    assertProblem(await push(gw, withEpoch(2, v1, "bad epoch!")), 400, "invalid-push");
  });

  test("body tenant/namespace must match the path", async () => {
    const body = spec(5, v1);
    const res = await signedRequest(gw, {
      method: "PUT",
      path: "/_plugyard/namespaces/other/production",
      body,
    });
    assertProblem(res, 400, "invalid-push");
  });

  test("a referenced version without its bundle is rejected", async () => {
    const body = spec(6, v1);
    body.plugins.hello.version = "f".repeat(64);
    assertProblem(await push(gw, body), 400, "invalid-push");
  });
});

describe("signing", () => {
  const path = "/_plugyard/namespaces/sig/ns";
  const body = JSON.stringify(
    pushBody({ tenant: "sig", namespace: "ns", revision: 1, routes: [], plugins: {} }),
  );
  const put = (headers) => rawRequest(gw.port, { method: "PUT", path, headers, body });

  test("missing or malformed headers → unsigned", async () => {
    assertProblem(await put({}), 401, "unsigned");
    const headers = signHeaders(gw.secret, { method: "PUT", path, body });
    assertProblem(await put({ ...headers, "x-plugyard-nonce": "short" }), 401, "unsigned");
    assertProblem(await put({ ...headers, "x-plugyard-signature": "abc" }), 401, "unsigned");
  });

  test("a wrong secret or tampered body → bad-signature", async () => {
    const wrong = signHeaders("not-the-secret", { method: "PUT", path, body });
    assertProblem(await put(wrong), 401, "bad-signature");
    const other = signHeaders(gw.secret, { method: "PUT", path, body: body + " " });
    assertProblem(await put(other), 401, "bad-signature");
  });

  test("a timestamp outside the window → stale-request", async () => {
    const old = Math.floor(Date.now() / 1000) - 301;
    assertProblem(await put(signHeaders(gw.secret, { method: "PUT", path, body, timestamp: old })), 401, "stale-request");
    const future = Math.floor(Date.now() / 1000) + 301;
    assertProblem(await put(signHeaders(gw.secret, { method: "PUT", path, body, timestamp: future })), 401, "stale-request");
  });

  test("a replayed nonce → replayed-request", async () => {
    const headers = signHeaders(gw.secret, { method: "PUT", path, body, nonce: newNonce() });
    const first = await put(headers);
    assert.equal(first.status, 200, first.text);
    assertProblem(await put(headers), 401, "replayed-request");
  });

  test("unknown control paths are 404 problems (after signing)", async () => {
    assertProblem(await rawRequest(gw.port, { path: "/_plugyard/nope" }), 401, "unsigned");
    assertProblem(await signedRequest(gw, { path: "/_plugyard/nope" }), 404, "not-found");
  });
});

describe("health", () => {
  test("unsigned shows only the status", async () => {
    const res = await rawRequest(gw.port, { path: "/_plugyard/health" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { status: "ok" });
  });

  test("signed lists the held revision of every namespace", async () => {
    await push(gw, pushBody({ tenant: "beta", namespace: "staging", revision: 7, routes: [], plugins: {} }));
    const res = await signedRequest(gw, { path: "/_plugyard/health" });
    assert.equal(res.status, 200, res.text);
    const body = res.json();
    assert.equal(body.status, "ok");
    assert.equal(typeof body.generation, "number");
    assert.ok(body.generation >= 1);
    assert.equal(body.namespaces["beta/staging"], 7);
    assert.equal(body.namespaces["acme/production"], 2);
  });

  test("a badly signed health request is rejected", async () => {
    const headers = signHeaders("wrong", { method: "GET", path: "/_plugyard/health" });
    assertProblem(await rawRequest(gw.port, { path: "/_plugyard/health", headers }), 401, "bad-signature");
  });
});
