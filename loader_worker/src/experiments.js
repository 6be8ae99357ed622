/**
 * A/B experiments in the data plane (docs/experiments.md).
 *
 * For a plugin whose pushed state carries an `experiment`, {@link chooseServing} decides which
 * version serves the request:
 * - a valid preview override (`x-plugyard-preview-variant`, a token the tenant issued through the
 *   API) forces its variant; such requests are tagged variant `preview` and never counted;
 * - a paused experiment serves the active version to everyone (assignments are deterministic,
 *   so resuming gives every visitor their variant back);
 * - a running one reads the visitor key from the sticky cookie (set here when missing:
 *   HttpOnly, SameSite=Lax, Secure on https) or from the named request header, and buckets it
 *   with bucketing.js: holdout, exclusion range, coverage, weights.
 * The response then carries `x-plugyard-variant` ({@link decorate}).
 */
import { assign } from "./bucketing.js";

export const PREVIEW_HEADER = "x-plugyard-preview-variant";
export const VARIANT_HEADER = "x-plugyard-variant";
/** Metrics variant of forced (preview) requests: kept apart from every result. */
export const PREVIEW_VARIANT = "preview";
const COOKIE_MAX_AGE_S = 365 * 86400;
const NAME_RE = /^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$/;
const TOKEN_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const ENV_HASH_RE = /^[0-9a-f]{16}$/;
const encoder = new TextEncoder();

/**
 * @typedef {Object} Variant
 * @property {string} name
 * @property {string} version
 * @property {string} env_hash
 * @property {Record<string, number> | null} [limits]
 * @property {number} weight
 */

/**
 * @typedef {Object} Experiment
 * @property {string} key
 * @property {string} seed
 * @property {number} phase
 * @property {"running" | "paused"} state
 * @property {number} coverage
 * @property {Variant[]} variants
 * @property {{source: "cookie" | "header", name: string}} sticky
 * @property {{group: string, start: number, end: number} | null} exclusion
 * @property {number} holdout
 */

/**
 * @typedef {Object} Serving
 * @property {any} state The plugin state to load (the variant's version, env hash and limits).
 * @property {string | null} variant The variant name, `preview`, or null (active version).
 * @property {string | null} reported `x-plugyard-variant` value (the forced variant for previews).
 * @property {string | null} setCookie A Set-Cookie value to add to the response.
 * @property {Experiment | null} experiment
 * @property {string | null} [visitor] The visitor key that was bucketed.
 */

/** @param {unknown} v @returns {boolean} */
const isShare = (v) => typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 1;

/**
 * Checks a plugin's pushed `experiment` member; returns a user-facing error or null.
 * @param {any} exp
 * @returns {string | null}
 */
export function validateExperiment(exp) {
  if (exp == null) return null;
  if (typeof exp !== "object" || Array.isArray(exp)) return "experiment must be an object.";
  if (typeof exp.key !== "string" || typeof exp.seed !== "string" || !exp.seed) return "experiment needs key and seed.";
  if (exp.state !== "running" && exp.state !== "paused") return "experiment.state must be running or paused.";
  if (!Number.isSafeInteger(exp.phase) || exp.phase < 1) return "experiment.phase must be a positive integer.";
  if (!isShare(exp.coverage) || !isShare(exp.holdout ?? 0)) return "experiment coverage/holdout must be in [0, 1].";
  if (!Array.isArray(exp.variants) || exp.variants.length < 2) return "experiment needs at least 2 variants.";
  for (const v of exp.variants) {
    if (!v || !NAME_RE.test(v.name) || !HASH_RE.test(v.version) || !ENV_HASH_RE.test(v.env_hash) || !isShare(v.weight)) {
      return "each experiment variant needs name, version (64 hex), env_hash (16 hex) and weight in [0, 1].";
    }
  }
  const sticky = exp.sticky;
  if (!sticky || (sticky.source !== "cookie" && sticky.source !== "header") || !TOKEN_NAME_RE.test(sticky.name)) {
    return "experiment.sticky must be {source: cookie|header, name}.";
  }
  const ex = exp.exclusion;
  if (ex != null && (typeof ex.group !== "string" || !isShare(ex.start) || !isShare(ex.end))) {
    return "experiment.exclusion must be {group, start, end}.";
  }
  return null;
}

/**
 * @param {Request} request
 * @param {string} name
 * @returns {string}
 */
export function readCookie(request, name) {
  const header = request.headers.get("cookie");
  if (!header) return "";
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return "";
}

/**
 * The sticky cookie for a new visitor id.
 * @param {Request} request
 * @param {string} name
 * @param {string} id
 */
export function stickyCookie(request, name, id) {
  const https = new URL(request.url).protocol === "https:" || request.headers.get("x-forwarded-proto") === "https";
  return `${name}=${id}; Path=/; Max-Age=${COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax${https ? "; Secure" : ""}`;
}

/**
 * Variant states per plugin state and tag. The same object for every request to a variant lets
 * the data plane reuse what it derived from it (data-plane.js, `planFor`); a push replaces the
 * plugin state, so its variants go with it.
 * @type {WeakMap<object, Map<string, any>>}
 */
const variantStates = new WeakMap();

/** @param {any} state @param {Variant} v @param {string} tag */
function variantState(state, v, tag) {
  let byTag = variantStates.get(state);
  if (!byTag) variantStates.set(state, (byTag = new Map()));
  const key = `${tag}\n${v.name}`;
  let held = byTag.get(key);
  if (!held) {
    held = { ...state, version: v.version, env_hash: v.env_hash, limits: v.limits ?? state.limits, variant: tag };
    byTag.set(key, held);
  }
  return held;
}

/** @param {string} text @returns {string} */
function base64UrlDecode(text) {
  const b64 = text.replaceAll("-", "+").replaceAll("_", "/");
  return new TextDecoder().decode(Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0)));
}

/** @param {string} secret @param {string} message @returns {Promise<string>} hex HMAC-SHA256 */
async function hmacHex(secret, message) {
  const derive = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const keyBytes = await crypto.subtle.sign("HMAC", derive, encoder.encode("plugyard-experiment-preview"));
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Verifies a preview token (platform/plugyard/experiments/preview.py) for this request.
 * @returns {Promise<string | null>} the forced variant name, or null if the token does not apply.
 */
export async function previewVariant(token, secret, ns, plugin, exp) {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "v1" || typeof secret !== "string" || !secret) return null;
  const expected = await hmacHex(secret, parts[1]);
  if (expected.length !== parts[2].length) return null;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ parts[2].charCodeAt(i);
  if (diff !== 0) return null;
  let payload;
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    return null;
  }
  const fresh = Number(payload.x) > Date.now() / 1000;
  const matches = payload.t === ns.tenant && payload.n === ns.namespace && payload.p === plugin && payload.e === exp.key;
  return fresh && matches ? String(payload.v) : null;
}

/**
 * Decides what serves a request to `plugin` (see the module comment). Synchronous (no promise)
 * unless a preview token has to be verified: the hot path only awaits when it must.
 * @param {Request} request
 * @param {{SIGNING_SECRET?: string | null}} env
 * @param {{tenant: string, namespace: string}} ns
 * @param {string} plugin
 * @param {any} state The plugin's pushed state.
 * @returns {Serving | Promise<Serving>}
 */
export function chooseServing(request, env, ns, plugin, state) {
  /** @type {Experiment | null} */
  const exp = state.experiment ?? null;
  /** @type {Serving} */
  const none = { state, variant: null, reported: null, setCookie: null, experiment: exp };
  if (!exp) return none;
  const token = request.headers.get(PREVIEW_HEADER);
  if (token) return previewServing(request, env, ns, plugin, token, none);
  return bucketed(request, exp, none);
}

/**
 * The variant forced by a valid preview token, else as {@link bucketed}.
 * @param {Request} request
 * @param {{SIGNING_SECRET?: string | null}} env
 * @param {{tenant: string, namespace: string}} ns
 * @param {string} plugin
 * @param {string} token
 * @param {Serving & {experiment: Experiment}} none
 * @returns {Promise<Serving>}
 */
async function previewServing(request, env, ns, plugin, token, none) {
  const exp = none.experiment;
  const name = await previewVariant(token, env.SIGNING_SECRET, ns, plugin, exp);
  const v = exp.variants.find((x) => x.name === name);
  if (v) return { ...none, state: variantState(none.state, v, PREVIEW_VARIANT), variant: PREVIEW_VARIANT, reported: v.name };
  return bucketed(request, exp, none);
}

/**
 * Buckets the visitor of a request to a plugin with an experiment.
 * @param {Request} request
 * @param {Experiment} exp
 * @param {Serving} none What serves when the visitor gets no variant.
 * @returns {Serving}
 */
function bucketed(request, exp, none) {
  if (exp.state !== "running") return none;
  let key;
  let setCookie = null;
  if (exp.sticky.source === "header") {
    key = request.headers.get(exp.sticky.name) ?? "";
  } else {
    key = readCookie(request, exp.sticky.name);
    if (!key) {
      key = crypto.randomUUID();
      setCookie = stickyCookie(request, exp.sticky.name, key);
    }
  }
  const result = assign(
    { seed: exp.seed, coverage: exp.coverage, weights: exp.variants.map((v) => v.weight), exclusion: exp.exclusion, holdout: exp.holdout },
    key,
  );
  if (result.variant === null) return { ...none, setCookie };
  const v = exp.variants[result.variant];
  return { state: variantState(none.state, v, v.name), variant: v.name, reported: v.name, setCookie, experiment: exp, visitor: key };
}

/**
 * Adds the experiment headers to a response.
 * @param {Response} response A mutable response.
 * @param {Serving} serving
 */
export function decorate(response, serving) {
  if (serving.setCookie) response.headers.append("set-cookie", serving.setCookie);
  if (serving.reported) response.headers.set(VARIANT_HEADER, serving.reported);
  else if (serving.experiment) response.headers.set(VARIANT_HEADER, "none");
}
