/**
 * Test helper: signs control requests the way the control plane does and builds push bodies.
 * Not a test file itself.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { rawRequest } from "./workerd.js";

/** @returns {string} a fresh 32-char nonce. */
export function newNonce() {
  return randomBytes(24).toString("base64url");
}

/**
 * Signing headers for a control request.
 * @param {string} secret
 * @param {{method: string, path: string, body?: string, timestamp?: number, nonce?: string}} r
 */
export function signHeaders(secret, { method, path, body = "", timestamp, nonce }) {
  const ts = String(timestamp ?? Math.floor(Date.now() / 1000));
  const n = nonce ?? newNonce();
  const mac = createHmac("sha256", secret).update(`${ts}.${n}.${method}.${path}.${body}`).digest("hex");
  return {
    "x-plugyard-timestamp": ts,
    "x-plugyard-nonce": n,
    "x-plugyard-signature": `v1=${mac}`,
  };
}

/**
 * Sends a signed control request.
 * @param {import("./workerd.js").Gateway} gw
 * @param {{method?: string, path: string, body?: unknown, timestamp?: number, nonce?: string,
 *   secret?: string}} r `body` is JSON-encoded unless it is a string.
 */
export function signedRequest(gw, { method = "GET", path, body, timestamp, nonce, secret }) {
  const text = body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body);
  const headers = signHeaders(secret ?? gw.secret, { method, path, body: text, timestamp, nonce });
  if (text) headers["content-type"] = "application/json";
  return rawRequest(gw.port, { method, path, headers, body: text || undefined });
}

/** @param {string} text @returns {string} lowercase hex SHA-256. */
export function sha256(text) {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * A bundle whose main module is `code` (plus extra modules), with its content hash.
 * @param {string} code ES module source of index.js.
 * @param {Record<string, Record<string, unknown>>} [extra]
 */
export function makeBundle(code, extra = {}) {
  const bundle = {
    mainModule: "index.js",
    modules: { "index.js": { js: code }, ...extra },
    compatibilityDate: "2025-11-01",
    compatibilityFlags: [],
  };
  return { hash: sha256(JSON.stringify(bundle)), bundle };
}

/**
 * A plugin entry for a bundle (or no active version when `bundle` is null).
 * @param {{hash: string} | null} bundle
 * @param {Record<string, string>} [vars]
 */
export function pluginFor(bundle, vars = {}) {
  if (!bundle) return { version: null, env_hash: null, vars: {}, limits: null };
  const limits = { cpuMs: 50, subRequests: 50 };
  return {
    version: bundle.hash,
    env_hash: sha256(JSON.stringify({ vars, limits })).slice(0, 16),
    vars,
    limits,
  };
}

/**
 * A push body.
 * @param {{tenant: string, namespace: string, revision: number,
 *   routes: {pattern: string, plugin: string}[],
 *   plugins: Record<string, {bundle: {hash: string, bundle: object} | null, vars?: Record<string, string>}>}} spec
 */
export function pushBody({ tenant, namespace, revision, routes, plugins }) {
  const body = { tenant, namespace, revision, routes, plugins: {}, bundles: {} };
  for (const [name, { bundle, vars }] of Object.entries(plugins)) {
    body.plugins[name] = pluginFor(bundle, vars);
    if (bundle) body.bundles[bundle.hash] = bundle.bundle;
  }
  return body;
}

/**
 * Pushes a namespace; returns the response.
 * @param {import("./workerd.js").Gateway} gw
 * @param {ReturnType<typeof pushBody>} body
 */
export function push(gw, body) {
  return signedRequest(gw, {
    method: "PUT",
    path: `/_plugyard/namespaces/${body.tenant}/${body.namespace}`,
    body,
  });
}

/**
 * A data-plane GET.
 * @param {import("./workerd.js").Gateway} gw
 * @param {string} host
 * @param {string} path
 * @param {Record<string, string>} [headers]
 */
export function get(gw, host, path, headers = {}) {
  return rawRequest(gw.port, { host, path, headers });
}

/** Asks the gateway for its diagnostic headers (`x-plugyard-version`, `server-timing`). */
export const DEBUG = { "x-plugyard-debug": "1" };
