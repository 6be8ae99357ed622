/**
 * Experiment visitors and conversions, reported to the control plane (docs/experiments.md).
 *
 * - {@link noteExposure}: the data plane adds the visitor of every counted experiment request
 *   (not previews) as a 53-bit hash to an in-memory set per (tenant, namespace, plugin,
 *   experiment, phase, variant);
 * - {@link Events}: the `env.PLUGYARD` binding every plugin isolate gets; `track(name)` counts a
 *   conversion for the isolate's variant (each variant runs in its own isolate, so the props
 *   identify it). Outside an experiment, and for previews, `track` is accepted and ignored;
 * - every flush interval the aggregate is sealed into a report with a unique `batch_id` and
 *   POSTed, signed like a push, to `/v1/ingest/experiments` next to PLUGYARD_INGEST_URL. A report
 *   that fails stays in memory (at most {@link MAX_UNSENT}) and is resent with the same id; the
 *   control plane stores a batch id once. Reports are off when metrics are off.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { fnv1a32 } from "./bucketing.js";
import { flushIntervalMs, metricsEnabled } from "./metrics.js";
import { signHeaders } from "./metrics-outbox.js";
import { PREVIEW_VARIANT } from "./experiments.js";

export const INGEST_PATH = "/v1/ingest/experiments";
const MAX_VISITORS = 50_000;
const MAX_UNSENT = 20;
const EVENT_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * @typedef {Object} Scope
 * @property {string} tenant
 * @property {string} namespace
 * @property {string} plugin
 * @property {string} experiment
 * @property {number} phase
 * @property {string} variant
 */

/** @type {Map<string, {scope: Scope, visitors: Set<number>, conversions: Map<string, number>}>} */
let current = new Map();
let visitorsHeld = 0;
/** @type {{batch_id: string, body: string}[]} */
let unsent = [];
/** @type {Promise<void> | null} */
let timer = null;

/**
 * A 53-bit hash of a visitor key (two FNV-1a passes): distinct visitors are counted exactly up
 * to hash collisions.
 * @param {string} key
 */
export function visitorHash(key) {
  return fnv1a32(key) * 2 ** 21 + (fnv1a32(key + "\u0000plugyard") >>> 11);
}

/** @param {Scope} scope */
function entry(scope) {
  const key = [scope.tenant, scope.namespace, scope.plugin, scope.experiment, scope.phase, scope.variant].join("\n");
  let held = current.get(key);
  if (!held) {
    held = { scope, visitors: new Set(), conversions: new Map() };
    current.set(key, held);
  }
  return held;
}

/**
 * The experiment scope of an isolate or a request, or null when nothing is counted.
 * @param {{tenant: string, namespace: string}} ns
 * @param {string} plugin
 * @param {import("./experiments.js").Serving} serving
 * @returns {Scope | null}
 */
export function scopeOf(ns, plugin, serving) {
  if (!serving.experiment || !serving.variant || serving.variant === PREVIEW_VARIANT) return null;
  return {
    tenant: ns.tenant,
    namespace: ns.namespace,
    plugin,
    experiment: serving.experiment.key,
    phase: serving.experiment.phase,
    variant: serving.variant,
  };
}

/**
 * Counts the visitor of an experiment request.
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {Scope | null} scope
 * @param {string | null} visitor
 */
export function noteExposure(env, ctx, scope, visitor) {
  if (!scope || !visitor || !metricsEnabled(env)) return;
  const held = entry(scope);
  const before = held.visitors.size;
  held.visitors.add(visitorHash(visitor));
  visitorsHeld += held.visitors.size - before;
  schedule(env, ctx);
}

/**
 * `env.PLUGYARD` for a plugin isolate.
 * @param {ExecutionContext} ctx
 * @param {Scope | null} scope
 */
export function pluginBinding(ctx, scope) {
  const exports = /** @type {any} */ (ctx).exports;
  return exports.Events({ props: { scope } });
}

/** The `env.PLUGYARD` entrypoint: conversions of the isolate's variant. */
export class Events extends WorkerEntrypoint {
  /**
   * Counts one conversion event (e.g. "signup") for this isolate's variant.
   * @param {string} name
   * @returns {boolean} whether it was counted (false outside an experiment and for previews).
   */
  track(name) {
    if (typeof name !== "string" || !EVENT_RE.test(name)) {
      throw new TypeError("track(name): name must be 1-64 characters of [A-Za-z0-9_.:-]");
    }
    const scope = /** @type {any} */ (this.ctx).props?.scope ?? null;
    if (!scope || !metricsEnabled(this.env)) return false;
    const held = entry(scope);
    held.conversions.set(name, (held.conversions.get(name) ?? 0) + 1);
    schedule(this.env, this.ctx);
    return true;
  }
}

/** @param {any} env @param {ExecutionContext} ctx */
function schedule(env, ctx) {
  if (visitorsHeld >= MAX_VISITORS) {
    ctx.waitUntil(flush(env));
    return;
  }
  if (timer) return;
  timer = new Promise((resolve) => setTimeout(resolve, flushIntervalMs(env))).then(() => {
    timer = null;
    return flush(env);
  });
  ctx.waitUntil(timer);
}

/**
 * Seals what is held into a report and sends every unsent report (oldest first).
 * @param {any} env
 */
export async function flush(env) {
  if (current.size) {
    const rows = [...current.values()].map(({ scope, visitors, conversions }) => ({
      ...scope,
      visitors: [...visitors],
      conversions: Object.fromEntries(conversions),
    }));
    const batch_id = crypto.randomUUID();
    unsent.push({ batch_id, body: JSON.stringify({ batch_id, rows }) });
    current = new Map();
    visitorsHeld = 0;
  }
  if (unsent.length > MAX_UNSENT) {
    console.error("experiment_reports_dropped", unsent.length - MAX_UNSENT);
    unsent = unsent.slice(-MAX_UNSENT);
  }
  const url = new URL(INGEST_PATH, String(env.INGEST_URL)).toString();
  while (unsent.length) {
    const { body } = unsent[0];
    try {
      const headers = await signHeaders(env.SIGNING_SECRET, "POST", INGEST_PATH, body);
      const fetcher = env.INGEST ?? globalThis;
      const response = await fetcher.fetch(url, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body,
      });
      await response.text();
      if (response.status >= 500 || response.status === 401) return; // retried next flush
      if (response.status !== 200) console.error("experiment_report_rejected", response.status);
    } catch (error) {
      console.error("experiment_report_failed", String(error));
      return;
    }
    unsent.shift();
  }
}
