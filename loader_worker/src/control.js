/**
 * The control API (`/_plugyard/*`): request signing and the push / health handlers.
 * See docs/gateway-protocol.md, "Signing", "Push a namespace" and "Health".
 */
import { json, problem } from "./problems.js";
import { registryStub } from "./registry.js";
import { parsePattern } from "./routing.js";
import { applyPushed } from "./snapshot.js";
import { isObject, validateBundle, validateLimits, validateStrings } from "./checks.js";
import { handlePreviewPut } from "./preview.js";
import { handleValidate } from "./validate.js";
import { metricsHealth } from "./metrics.js";
import { validateExperiment } from "./experiments.js";
import { egressCounts, validateEgress } from "./outbound.js";
import { MAX_HOLD_MS, processInfo, startDrain } from "./pool.js";
import { handleQuarantine } from "./quarantine.js";

const DEFAULT_WINDOW_S = 300;
const TIMESTAMP_RE = /^[0-9]{1,15}$/;
const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;
const SIGNATURE_RE = /^v1=[0-9a-f]{64}$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const ENV_HASH_RE = /^[0-9a-f]{16}$/;
const EPOCH_RE = /^[A-Za-z0-9-]{1,64}$/;
const SEGMENT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const PUSH_PATH_RE = /^\/_plugyard\/namespaces\/([^/]+)\/([^/]+)$/;
const PREVIEW_PATH_RE = /^\/_plugyard\/previews\/([^/]+)$/;
const encoder = new TextEncoder();

/** @type {{secret: string, key: CryptoKey} | null} */
let cachedKey = null;

/** @param {string} secret @returns {Promise<CryptoKey>} */
async function hmacKey(secret) {
  if (cachedKey?.secret !== secret) {
    const key = await crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    cachedKey = { secret, key };
  }
  return cachedKey.key;
}

/**
 * Compares two byte arrays in time independent of where they differ.
 * @param {Uint8Array} a @param {Uint8Array} b
 */
export function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** @param {string} hex @returns {Uint8Array} */
function hexToBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/**
 * @param {import("./index.js").Env} env
 * @returns {number} the accepted clock skew and nonce memory, in seconds.
 */
function windowSeconds(env) {
  const value = Number(env.NONCE_WINDOW_S);
  return env.NONCE_WINDOW_S != null && Number.isFinite(value) && value > 0 ? value : DEFAULT_WINDOW_S;
}

/**
 * Verifies the signing headers of a control request.
 * @param {Request} request
 * @param {Uint8Array} body Exact request body bytes.
 * @param {string} secret
 * @param {number} windowS
 * @param {string} requestId
 * @returns {Promise<{ok: true, timestamp: number, nonce: string} | {ok: false, response: Response}>}
 */
export async function verifySignature(request, body, secret, windowS, requestId) {
  const timestamp = request.headers.get("x-plugyard-timestamp") ?? "";
  const nonce = request.headers.get("x-plugyard-nonce") ?? "";
  const signature = request.headers.get("x-plugyard-signature") ?? "";
  if (!TIMESTAMP_RE.test(timestamp) || !NONCE_RE.test(nonce) || !SIGNATURE_RE.test(signature)) {
    const detail = "X-Plugyard-Timestamp, X-Plugyard-Nonce and X-Plugyard-Signature are required.";
    return { ok: false, response: problem(401, "unsigned", detail, requestId) };
  }
  const path = new URL(request.url).pathname;
  const head = encoder.encode(`${timestamp}.${nonce}.${request.method.toUpperCase()}.${path}.`);
  const message = new Uint8Array(head.length + body.length);
  message.set(head);
  message.set(body, head.length);
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret), message));
  if (!constantTimeEqual(expected, hexToBytes(signature.slice(3)))) {
    return {
      ok: false,
      response: problem(401, "bad-signature", "The signature does not verify.", requestId),
    };
  }
  const now = Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > windowS) {
    const detail = `The timestamp is more than ${windowS} s away from the gateway's clock.`;
    return { ok: false, response: problem(401, "stale-request", detail, requestId) };
  }
  return { ok: true, timestamp: Number(timestamp), nonce };
}

/**
 * Handles a `/_plugyard/*` request.
 * @param {Request} request
 * @param {import("./index.js").Env} env
 * @param {ExecutionContext} _ctx
 * @param {string} requestId
 * @returns {Promise<Response>}
 */
export async function handleControl(request, env, _ctx, requestId) {
  const url = new URL(request.url);
  const isHealth = url.pathname === "/_plugyard/health";
  const signed = ["x-plugyard-timestamp", "x-plugyard-nonce", "x-plugyard-signature"].some(
    (name) => request.headers.has(name),
  );
  // The unsigned liveness form: says nothing about the state.
  if (isHealth && request.method === "GET" && !signed) return json({ status: "ok" });

  const secret = env.SIGNING_SECRET;
  if (typeof secret !== "string" || secret.length === 0) {
    const detail = "PLUGYARD_GATEWAY_SECRET is not set on the gateway.";
    return problem(503, "gateway-misconfigured", detail, requestId);
  }
  const body = new Uint8Array(await request.arrayBuffer());
  const windowS = windowSeconds(env);
  const verified = await verifySignature(request, body, secret, windowS, requestId);
  if (!verified.ok) return verified.response;

  // The pool supervisor's probe: this process only, no Durable Object call (src/pool.js).
  if (url.pathname === "/_plugyard/process") {
    if (request.method !== "GET") return methodNotAllowed("GET", requestId);
    return json({ status: "ok", ...processInfo() });
  }
  const registry = registryStub(env.REGISTRY);
  if (request.method !== "GET") {
    const now = Math.floor(Date.now() / 1000);
    const expiresAt = Math.max(now, verified.timestamp) + windowS + 1;
    if (!(await registry.acceptNonce(verified.nonce, expiresAt, now))) {
      const detail = "This nonce was already accepted.";
      return problem(401, "replayed-request", detail, requestId);
    }
  }

  if (isHealth) {
    if (request.method !== "GET") return methodNotAllowed("GET", requestId);
    const { generation, namespaces, epochs } = await registry.revisions();
    return json({
      status: "ok",
      generation,
      namespaces,
      epochs,
      metrics: await metricsHealth(env),
      egress: egressCounts(),
    });
  }
  const push = PUSH_PATH_RE.exec(url.pathname);
  if (push) {
    if (request.method !== "PUT") return methodNotAllowed("PUT", requestId);
    return handlePush(registry, body, decodeURIComponent(push[1]), decodeURIComponent(push[2]), requestId);
  }
  // The pool supervisor recycles this process: hold data-plane requests until SIGTERM (pool.js).
  if (url.pathname === "/_plugyard/process/drain") {
    if (request.method !== "POST") return methodNotAllowed("POST", requestId);
    let holdMs;
    try {
      holdMs = JSON.parse(new TextDecoder().decode(body)).hold_ms;
    } catch {
      holdMs = undefined;
    }
    if (!Number.isInteger(holdMs) || holdMs < 0 || holdMs > MAX_HOLD_MS) {
      const detail = `The body must be {"hold_ms": n} with n an integer from 0 to ${MAX_HOLD_MS}.`;
      return problem(400, "invalid-drain", detail, requestId);
    }
    startDrain(holdMs);
    return json({ status: "draining", ...processInfo() });
  }
  if (url.pathname === "/_plugyard/quarantine") {
    if (request.method !== "POST") return methodNotAllowed("POST", requestId);
    return handleQuarantine(registry, body, requestId);
  }
  if (url.pathname === "/_plugyard/validate") {
    if (request.method !== "POST") return methodNotAllowed("POST", requestId);
    return handleValidate(env, body, requestId);
  }
  const preview = PREVIEW_PATH_RE.exec(url.pathname);
  if (preview) {
    if (request.method !== "PUT") return methodNotAllowed("PUT", requestId);
    return handlePreviewPut(env, decodeURIComponent(preview[1]), body, requestId);
  }
  return problem(404, "not-found", `No control endpoint at ${url.pathname}.`, requestId);
}

/** @param {string} allow @param {string} requestId */
function methodNotAllowed(allow, requestId) {
  return problem(405, "method-not-allowed", `Use ${allow}.`, requestId, {}, { allow });
}

/**
 * `PUT /_plugyard/namespaces/{tenant}/{namespace}`.
 * @param {any} registry Registry stub.
 * @param {Uint8Array} body
 * @param {string} tenant
 * @param {string} namespace
 * @param {string} requestId
 */
async function handlePush(registry, body, tenant, namespace, requestId) {
  let input;
  try {
    input = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return problem(400, "invalid-push", "The body is not JSON.", requestId);
  }
  const error = validatePush(input, tenant, namespace);
  if (error) return problem(400, "invalid-push", error, requestId);

  const result = await registry.push(
    {
      tenant: input.tenant,
      namespace: input.namespace,
      revision: input.revision,
      epoch: input.epoch ?? null,
      routes: input.routes.map((r) => ({ pattern: r.pattern, plugin: r.plugin })),
      plugins: input.plugins,
      bundles: input.bundles,
      egress: input.egress ?? { allow: [], methods: null },
    },
    Math.floor(Date.now() / 1000),
  );
  switch (result.status) {
    case "applied":
      applyPushed(result.state, result.generation, input.bundles);
      return json({ status: "applied", revision: result.revision });
    case "unchanged":
      return json({ status: "unchanged", revision: result.revision });
    case "stale":
      return problem(
        409,
        "stale-revision",
        `Revision ${result.revision} is lower than the held revision ${result.held_revision}.`,
        requestId,
        { held_revision: result.held_revision },
      );
    default:
      return problem(
        400,
        "invalid-push",
        `Bundles missing for versions: ${result.missing.join(", ")}.`,
        requestId,
      );
  }
}

/**
 * Checks a push body; returns a user-facing error or null.
 * @param {any} input
 * @param {string} tenant Path segment.
 * @param {string} namespace Path segment.
 * @returns {string | null}
 */
export function validatePush(input, tenant, namespace) {
  if (!isObject(input)) return "The body must be a JSON object.";
  if (!SEGMENT_RE.test(tenant) || !SEGMENT_RE.test(namespace)) {
    return "Tenant and namespace must be 1-128 characters of [A-Za-z0-9._-].";
  }
  if (input.tenant !== tenant || input.namespace !== namespace) {
    return "tenant and namespace in the body must equal the path segments.";
  }
  if (!Number.isSafeInteger(input.revision) || input.revision < 0) {
    return "revision must be a non-negative integer.";
  }
  if (input.epoch != null && (typeof input.epoch !== "string" || !EPOCH_RE.test(input.epoch))) {
    return "epoch must be 1-64 characters of [A-Za-z0-9-] when given.";
  }
  if (!Array.isArray(input.routes)) return "routes must be an array.";
  for (const route of input.routes) {
    if (!isObject(route) || typeof route.plugin !== "string") {
      return "Each route needs a pattern and a plugin.";
    }
    if (!parsePattern(route.pattern)) return `Invalid route pattern: ${String(route.pattern)}.`;
  }
  const egressError = validateEgress(input.egress);
  if (egressError) return egressError;
  if (!isObject(input.plugins)) return "plugins must be an object.";
  for (const [name, plugin] of Object.entries(input.plugins)) {
    if (!isObject(plugin)) return `Plugin ${name} must be an object.`;
    if (plugin.version !== null) {
      if (!HASH_RE.test(plugin.version)) return `Plugin ${name}: version must be 64 hex or null.`;
      if (!ENV_HASH_RE.test(plugin.env_hash)) return `Plugin ${name}: env_hash must be 16 hex.`;
    }
    if (plugin.vars !== undefined && !isObject(plugin.vars)) return `Plugin ${name}: vars must be an object.`;
    const envError =
      validateStrings(plugin.secrets, "secrets") ?? validateLimits(plugin.limits) ?? validateExperiment(plugin.experiment);
    if (envError) return `Plugin ${name}: ${envError}`;
    plugin.vars ??= {};
    plugin.secrets ??= {};
    plugin.limits ??= null;
    if (plugin.quarantine !== undefined && validateStrings(plugin.quarantine, "quarantine")) {
      return `Plugin ${name}: quarantine must map version hashes to reasons.`;
    }
  }
  if (input.bundles === undefined) input.bundles = {};
  if (!isObject(input.bundles)) return "bundles must be an object.";
  for (const [hash, bundle] of Object.entries(input.bundles)) {
    const error = validateBundle(bundle);
    if (error) return `Bundle ${hash}: ${error}`;
  }
  return null;
}
