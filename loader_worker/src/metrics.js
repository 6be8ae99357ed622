/**
 * Per-isolate metrics aggregation for the data plane and the tail entrypoint.
 *
 * Two sources feed one in-memory aggregate, keyed by
 * (tenant, namespace, plugin, version, variant, minute):
 * - the data plane ({@link recordRequest}) counts every request it forwarded to a plugin, its
 *   status class and its wall time (to response headers) in a fixed-bucket histogram;
 * - the tail entrypoint (tail.js, {@link recordTrace}) counts outcomes (ok, exception,
 *   exceededCpu, ...) and keeps the plugin's console lines and exceptions, masked.
 * They are separate counters on the same key (tail events arrive asynchronously after the
 * request ends and carry no request id to join on); see docs/metrics.md, "Attribution".
 *
 * Every {@link flushIntervalMs} (or sooner when a size bound is reached) the aggregate is sealed
 * into a batch with a unique id and handed to the `MetricsOutbox` Durable Object, which stores
 * it in SQLite and delivers it to the control plane until acknowledged (metrics-outbox.js).
 */
import { durableStub } from "./pool.js";

/** Upper bounds (ms) of the latency buckets; one more bucket counts everything above. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
/** Tail outcomes with their own counter; anything else counts as `other`. */
export const OUTCOMES = ["ok", "exception", "exceededCpu", "exceededMemory", "canceled"];
/** The variant tag when no experiment splits the plugin's traffic. */
export const DEFAULT_VARIANT = "default";

/** Distinct keys per batch before it is sealed early. */
export const MAX_ROWS = 5000;
/** Log entries per batch before it is sealed early. */
export const MAX_LOGS = 500;
/** Batches kept in isolate memory while the outbox cannot be reached; beyond, counted as dropped. */
const MAX_UNSENT = 20;
const MAX_MESSAGE = 2048;
const MAX_STACK = 4096;
const DEFAULT_FLUSH_MS = 2000;
export const MASK = "[secret]";

/**
 * @typedef {Object} Tags
 * @property {string} tenant
 * @property {string} namespace
 * @property {string} plugin
 * @property {string} version 64-hex content hash.
 * @property {string} variant
 */

/**
 * @typedef {Object} Row
 * @property {string} tenant
 * @property {string} namespace
 * @property {string} plugin
 * @property {string} version
 * @property {string} variant
 * @property {number} minute Unix seconds, a multiple of 60.
 * @property {number} requests
 * @property {number} s2xx
 * @property {number} s3xx
 * @property {number} s4xx
 * @property {number} s5xx
 * @property {number} failures Requests the plugin failed (threw, could not load): answered 502.
 * @property {number[]} latency Counts per bucket of {@link LATENCY_BUCKETS_MS} plus overflow.
 * @property {Record<string, number>} outcomes Tail outcomes.
 */

/**
 * @typedef {Object} LogEntry
 * @property {string} tenant
 * @property {string} namespace
 * @property {string} plugin
 * @property {string} version
 * @property {number} at Unix milliseconds.
 * @property {"log" | "exception"} kind
 * @property {string} level log/info/warn/error/debug, or `error` for exceptions.
 * @property {string} message
 * @property {string | null} stack
 */

/**
 * @typedef {Object} Batch
 * @property {string} batch_id UUID.
 * @property {number} sealed_at Unix milliseconds.
 * @property {Row[]} rows
 * @property {LogEntry[]} logs
 * @property {{requests: number, logs: number, batches: number}} dropped
 */

/** @param {number} ms @returns {number} the histogram bucket index. */
export function bucketIndex(ms) {
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) if (ms <= LATENCY_BUCKETS_MS[i]) return i;
  return LATENCY_BUCKETS_MS.length;
}

/**
 * Replaces every occurrence of each secret value by {@link MASK} (longest first, so a secret
 * that contains another is masked whole).
 * @param {string} text
 * @param {string[]} secrets
 * @returns {string}
 */
export function maskSecrets(text, secrets) {
  let out = text;
  for (const value of [...secrets].sort((a, b) => b.length - a.length)) {
    if (value) out = out.split(value).join(MASK);
  }
  return out;
}

/**
 * The values to mask for a plugin: every value of its `secrets` (the secret env bindings the
 * control plane pushes apart from `vars`) and the `vars` named in `secret_names`.
 * @param {{vars?: Record<string, unknown>, secrets?: Record<string, unknown>, secret_names?: string[]}} state
 * @returns {string[]}
 */
export function secretValues(state) {
  const values = [];
  for (const value of Object.values(state.secrets ?? {})) {
    if (typeof value === "string" && value) values.push(value);
  }
  for (const name of state.secret_names ?? []) {
    const value = state.vars && Object.hasOwn(state.vars, name) ? state.vars[name] : undefined;
    if (typeof value === "string" && value) values.push(value);
  }
  return values;
}

/** @param {unknown} part @returns {string} one console argument as text. */
function stringify(part) {
  if (typeof part === "string") return part;
  try {
    return JSON.stringify(part) ?? String(part);
  } catch {
    return String(part);
  }
}

/** @param {string} text @param {number} max */
function clip(text, max) {
  return text.length > max ? text.slice(0, max) + "…" : text;
}

class Aggregate {
  constructor() {
    /** @type {Map<string, Row>} */
    this.rows = new Map();
    /** @type {LogEntry[]} */
    this.logs = [];
    this.dropped = { requests: 0, logs: 0, batches: 0 };
  }

  /** @param {Tags} tags @param {number} atMs @returns {Row} */
  row(tags, atMs) {
    const minute = Math.floor(atMs / 60000) * 60;
    const key = [tags.tenant, tags.namespace, tags.plugin, tags.version, tags.variant, minute].join("\n");
    let row = this.rows.get(key);
    if (!row) {
      row = {
        tenant: tags.tenant,
        namespace: tags.namespace,
        plugin: tags.plugin,
        version: tags.version,
        variant: tags.variant,
        minute,
        requests: 0,
        s2xx: 0,
        s3xx: 0,
        s4xx: 0,
        s5xx: 0,
        failures: 0,
        latency: new Array(LATENCY_BUCKETS_MS.length + 1).fill(0),
        outcomes: {},
      };
      this.rows.set(key, row);
    }
    return row;
  }

  get full() {
    return this.rows.size >= MAX_ROWS || this.logs.length >= MAX_LOGS;
  }

  get empty() {
    const d = this.dropped;
    return !this.rows.size && !this.logs.length && !d.requests && !d.logs && !d.batches;
  }

  /** @returns {Batch} */
  seal() {
    return {
      batch_id: crypto.randomUUID(),
      sealed_at: Date.now(),
      rows: [...this.rows.values()],
      logs: this.logs,
      dropped: this.dropped,
    };
  }
}

/** @type {Aggregate} */
let current = new Aggregate();
/** Sealed batches the outbox did not take yet (it was unreachable). @type {Batch[]} */
let unsent = [];
/** @type {Promise<void> | null} */
let flushTimer = null;
/** @type {Promise<void> | null} */
let flushing = null;

/**
 * @param {{INGEST_URL?: string | null}} env
 * @returns {boolean} whether metrics are collected (PLUGYARD_INGEST_URL is set).
 */
export function metricsEnabled(env) {
  return typeof env.INGEST_URL === "string" && env.INGEST_URL.length > 0;
}

/** @param {{METRICS_FLUSH_MS?: string | null}} env @returns {number} */
export function flushIntervalMs(env) {
  const value = Number(env.METRICS_FLUSH_MS);
  return env.METRICS_FLUSH_MS && Number.isFinite(value) && value >= 50 ? value : DEFAULT_FLUSH_MS;
}

/**
 * Counts one request the data plane forwarded (or tried to forward) to a plugin.
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {Tags} tags
 * @param {{status: number, failed: boolean, startedAt: number}} result `startedAt`: Date.now()
 *   just before the plugin call.
 * @returns {number} the wall time in ms (to response headers), counted in the histogram.
 */
export function recordRequest(env, ctx, tags, result) {
  const ms = Math.max(0, Date.now() - result.startedAt);
  if (!metricsEnabled(env)) return ms;
  const row = current.row(tags, result.startedAt);
  row.requests += 1;
  const cls = Math.floor(result.status / 100);
  if (cls === 2) row.s2xx += 1;
  else if (cls === 3) row.s3xx += 1;
  else if (cls === 4) row.s4xx += 1;
  else if (cls === 5) row.s5xx += 1;
  if (result.failed) row.failures += 1;
  row.latency[bucketIndex(ms)] += 1;
  scheduleFlush(env, ctx);
  return ms;
}

/**
 * Counts one tail event (TraceItem) of a plugin isolate and keeps its logs and exceptions.
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {Tags & {secrets?: string[]}} tags The tail's props.
 * @param {any} event A TraceItem.
 */
export function recordTrace(env, ctx, tags, event) {
  if (!metricsEnabled(env)) return;
  const at = Number(event.eventTimestamp) || Date.now();
  const row = current.row(tags, at);
  const outcome = OUTCOMES.includes(event.outcome) ? event.outcome : "other";
  row.outcomes[outcome] = (row.outcomes[outcome] ?? 0) + 1;
  const secrets = tags.secrets ?? [];
  const base = { tenant: tags.tenant, namespace: tags.namespace, plugin: tags.plugin, version: tags.version };
  for (const line of event.logs ?? []) {
    const parts = Array.isArray(line.message) ? line.message : [line.message];
    const message = clip(maskSecrets(parts.map(stringify).join(" "), secrets), MAX_MESSAGE);
    current.logs.push({
      ...base,
      at: Number(line.timestamp) || at,
      kind: "log",
      level: String(line.level ?? "log"),
      message,
      stack: null,
    });
  }
  for (const exc of event.exceptions ?? []) {
    const text = `${exc.name ?? "Error"}: ${exc.message ?? ""}`;
    current.logs.push({
      ...base,
      at: Number(exc.timestamp) || at,
      kind: "exception",
      level: "error",
      message: clip(maskSecrets(text, secrets), MAX_MESSAGE),
      stack: exc.stack ? clip(maskSecrets(String(exc.stack), secrets), MAX_STACK) : null,
    });
  }
  scheduleFlush(env, ctx);
}

/**
 * Seals now if a size bound is reached, else makes sure a timed flush is pending. The flush
 * runs under `ctx.waitUntil` of the request (or tail event) that scheduled it.
 * @param {any} env
 * @param {ExecutionContext} ctx
 */
function scheduleFlush(env, ctx) {
  if (current.full) {
    ctx.waitUntil(flush(env));
    return;
  }
  if (flushTimer) return;
  flushTimer = new Promise((resolve) => setTimeout(resolve, flushIntervalMs(env))).then(() => {
    flushTimer = null;
    return flush(env);
  });
  ctx.waitUntil(flushTimer);
}

/**
 * Seals the current aggregate and hands every sealed batch to the outbox. A batch the outbox
 * cannot take stays in memory (at most {@link MAX_UNSENT}); older ones are counted as dropped
 * in the next batch.
 * @param {any} env
 * @returns {Promise<void>}
 */
export async function flush(env) {
  while (flushing) await flushing;
  flushing = (async () => {
    if (!current.empty) {
      unsent.push(current.seal());
      current = new Aggregate();
    }
    while (unsent.length > MAX_UNSENT) {
      const lost = /** @type {Batch} */ (unsent.shift());
      addDropped(current.dropped, lost);
    }
    if (!unsent.length) return;
    const outbox = outboxStub(env);
    while (unsent.length) {
      try {
        await outbox.enqueue(unsent[0]);
      } catch (error) {
        console.error("metrics_outbox_unreachable", String(error));
        return;
      }
      unsent.shift();
    }
  })().finally(() => {
    flushing = null;
  });
  return flushing;
}

/**
 * Adds what a lost batch held to a dropped-counter object.
 * @param {{requests: number, logs: number, batches: number}} into
 * @param {Batch} batch
 */
export function addDropped(into, batch) {
  into.batches += 1 + batch.dropped.batches;
  into.requests += batch.dropped.requests + batch.rows.reduce((n, r) => n + r.requests, 0);
  into.logs += batch.dropped.logs + batch.logs.length;
}

/** @returns {{rows: number, logs: number, unsent_batches: number}} what this isolate holds. */
export function localStatus() {
  return { rows: current.rows.size, logs: current.logs.length, unsent_batches: unsent.length };
}

/**
 * The stub of the single outbox object.
 * @param {{METRICS_OUTBOX: DurableObjectNamespace}} env
 */
export function outboxStub(env) {
  return durableStub(env.METRICS_OUTBOX, "outbox", "MetricsOutbox");
}

/**
 * The metric tags of a request to a plugin.
 * @param {{tenant: string, namespace: string}} ns
 * @param {string} plugin
 * @param {{version: string | null}} state
 * @param {string} [variant] The experiment variant serving the request, if any.
 * @returns {Tags}
 */
export function metricsTags(ns, plugin, state, variant = DEFAULT_VARIANT) {
  return { tenant: ns.tenant, namespace: ns.namespace, plugin, version: String(state.version), variant };
}

/**
 * The `metrics` member of the signed `/_plugyard/health` answer.
 * @param {any} env
 * @returns {Promise<Record<string, unknown>>}
 */
export async function metricsHealth(env) {
  if (!metricsEnabled(env)) return { enabled: false };
  try {
    return { enabled: true, ...(await outboxStub(env).status()), isolate: localStatus() };
  } catch (error) {
    return { enabled: true, error: String(error), isolate: localStatus() };
  }
}
