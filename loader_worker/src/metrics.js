/**
 * Per-isolate metrics aggregation for the data plane and the plugin-logs entrypoint.
 *
 * Two sources feed one in-memory aggregate, keyed by
 * (tenant, namespace, plugin, version, variant, minute):
 * - the data plane ({@link recordRequest}) counts every request it forwarded to a plugin, its
 *   status class, its outcome (ok, exception, exceededCpu, ...) and its wall time (to response
 *   headers) in a fixed-bucket histogram;
 * - the `PluginLogs` entrypoint (plugin-logs.js, {@link recordLogs}) keeps the plugin's console
 *   lines and exceptions, masked, as its isolate captured them (plugin-shim.js).
 * See docs/metrics.md, "Attribution".
 * A third, smaller series counts plugins' outbound requests ({@link recordEgress}, called by the
 * `Outbound` entrypoint) per (tenant, namespace, destination host, minute): allowed and blocked.
 *
 * Every {@link flushIntervalMs} (or sooner when a size bound is reached) the aggregate is sealed
 * into a batch with a unique id and handed to the `MetricsOutbox` Durable Object, which stores
 * it in SQLite and delivers it to the control plane until acknowledged (metrics-outbox.js).
 */
import { durableStub } from "./pool.js";

/** Upper bounds (ms) of the latency buckets; one more bucket counts everything above. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
/** Outcomes with their own counter (names as in Cloudflare's invocation outcomes). */
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
/**
 * Distinct destination hosts per (tenant, namespace, minute) that get their own egress row in a
 * gateway isolate; later hosts of that minute count under {@link OTHER_HOST}. Hosts are chosen
 * by the plugin (a blocked fetch to random names costs nothing), so they must be bounded.
 */
export const MAX_EGRESS_HOSTS = 20;
/** The egress row of the hosts beyond {@link MAX_EGRESS_HOSTS} (parentheses: never a host name). */
export const OTHER_HOST = "(other)";
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
 * @property {Record<string, number>} outcomes Per {@link OUTCOMES} name, one per request.
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
 * @typedef {Object} EgressRow
 * @property {string} tenant
 * @property {string} namespace
 * @property {string} host Lower-case `host[:port]` as in the request URL, or {@link OTHER_HOST}.
 * @property {number} minute Unix seconds, a multiple of 60.
 * @property {number} allowed Requests the namespace's egress policy let through.
 * @property {number} blocked Requests it refused.
 */

/**
 * What was lost and not yet reported; `egress` (outbound requests) is present only when non-zero,
 * so a batch stays readable by a control plane that predates it.
 * @typedef {{requests: number, logs: number, batches: number, egress?: number}} Dropped
 */

/**
 * @typedef {Object} Batch
 * @property {string} batch_id UUID.
 * @property {number} sealed_at Unix milliseconds.
 * @property {Row[]} rows
 * @property {LogEntry[]} logs
 * @property {EgressRow[]} [egress] Absent when the batch counts no outbound request.
 * @property {Dropped} dropped
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
    /** @type {Map<string, EgressRow>} */
    this.egress = new Map();
    /** @type {Dropped} */
    this.dropped = { requests: 0, logs: 0, batches: 0 };
  }

  /**
   * @param {{tenant: string, namespace: string}} ns
   * @param {string} host
   * @param {number} minute
   * @returns {EgressRow}
   */
  egressRow(ns, host, minute) {
    const key = [ns.tenant, ns.namespace, host, minute].join("\n");
    let row = this.egress.get(key);
    if (!row) {
      row = { tenant: ns.tenant, namespace: ns.namespace, host, minute, allowed: 0, blocked: 0 };
      this.egress.set(key, row);
    }
    return row;
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
    return this.rows.size + this.egress.size >= MAX_ROWS || this.logs.length >= MAX_LOGS;
  }

  get empty() {
    const d = this.dropped;
    if (this.rows.size || this.logs.length || this.egress.size) return false;
    return !d.requests && !d.logs && !d.batches && !d.egress;
  }

  /** @returns {Batch} */
  seal() {
    const { egress, ...dropped } = this.dropped;
    return {
      batch_id: crypto.randomUUID(),
      sealed_at: Date.now(),
      rows: [...this.rows.values()],
      logs: this.logs,
      ...(this.egress.size ? { egress: [...this.egress.values()] } : {}),
      dropped: egress ? { ...dropped, egress } : dropped,
    };
  }
}

/** @type {Aggregate} */
let current = new Aggregate();
/** Sealed batches the outbox did not take yet (it was unreachable). @type {Batch[]} */
let unsent = [];
/** @type {Promise<void> | null} */
let flushTimer = null;
/** Calls of the `PluginLogs` entrypoint this isolate took (health: `isolate.log_calls`). */
let logCalls = 0;
/** @type {Promise<void> | null} */
let flushing = null;
/**
 * Hosts with their own egress row, per `tenant\nnamespace\nminute`, across the batches of that
 * minute (so the bound holds per minute, not per batch). Older minutes are forgotten.
 * @type {Map<string, {minute: number, hosts: Set<string>}>}
 */
const egressHosts = new Map();

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
 * @param {{status: number, failed: boolean, startedAt: number, error?: unknown}} result
 *   `startedAt`: Date.now() just before the plugin call; `error`: what the call rejected with.
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
  // The outcome: the plugin's call resolved (`ok`) or how it rejected.
  const outcome = result.failed ? failureOutcome(result.error) : "ok";
  row.outcomes[outcome] = (row.outcomes[outcome] ?? 0) + 1;
  row.latency[bucketIndex(ms)] += 1;
  scheduleFlush(env, ctx);
  return ms;
}

/**
 * The host an outbound request is counted under: itself while its namespace has seen fewer than
 * {@link MAX_EGRESS_HOSTS} hosts this minute (in this gateway isolate), else {@link OTHER_HOST}.
 * @param {{tenant: string, namespace: string}} ns
 * @param {number} minute
 * @param {string} host
 * @returns {string}
 */
function egressHost(ns, minute, host) {
  const key = `${ns.tenant}\n${ns.namespace}\n${minute}`;
  let seen = egressHosts.get(key);
  if (!seen) {
    for (const [k, v] of egressHosts) if (v.minute < minute - 60) egressHosts.delete(k);
    seen = { minute, hosts: new Set() };
    egressHosts.set(key, seen);
  }
  if (seen.hosts.has(host)) return host;
  if (seen.hosts.size >= MAX_EGRESS_HOSTS) return OTHER_HOST;
  seen.hosts.add(host);
  return host;
}

/**
 * Counts one outbound request of a plugin, as the namespace's egress policy decided it.
 * @param {any} env
 * @param {ExecutionContext} ctx The `Outbound` entrypoint's context (the flush runs under it).
 * @param {{tenant: string, namespace: string}} ns
 * @param {string} host The request URL's `host` (lower-cased here).
 * @param {boolean} allowed
 */
export function recordEgress(env, ctx, ns, host, allowed) {
  if (!metricsEnabled(env)) return;
  const minute = Math.floor(Date.now() / 60000) * 60;
  const row = current.egressRow(ns, egressHost(ns, minute, host.toLowerCase()), minute);
  if (allowed) row.allowed += 1;
  else row.blocked += 1;
  scheduleFlush(env, ctx);
}

/**
 * Keeps a plugin isolate's console lines and exceptions, masked and clipped. Called by the
 * `PluginLogs` entrypoint (plugin-logs.js) with what the isolate's generated main module
 * captured (plugin-shim.js).
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {Tags & {secrets?: string[]}} tags The entrypoint's props.
 * @param {{logs: {level: string, message: unknown, timestamp?: number}[],
 *   exceptions: {name?: string, message?: string, stack?: string | null, timestamp?: number}[],
 *   dropped?: number}} entries `message` of a log line: a string or the console call's parts.
 *   `dropped`: entries the isolate could not keep (counted in the batch's `dropped.logs`).
 */
export function recordLogs(env, ctx, tags, entries) {
  if (!metricsEnabled(env)) return;
  logCalls += 1;
  const at = Date.now();
  const secrets = tags.secrets ?? [];
  const base = { tenant: tags.tenant, namespace: tags.namespace, plugin: tags.plugin, version: tags.version };
  for (const line of entries.logs) {
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
  for (const exc of entries.exceptions) {
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
  if (entries.dropped) current.dropped.logs += entries.dropped;
  scheduleFlush(env, ctx);
}

/**
 * The outcome of a plugin call that rejected: Cloudflare reports a CPU or memory limit as an
 * error with its own message ("Worker exceeded CPU time limit.", "... memory limit"), anything
 * else the plugin threw is an `exception`.
 * @param {unknown} error
 * @returns {string}
 */
export function failureOutcome(error) {
  const message = String(error);
  if (/exceeded CPU time limit/i.test(message)) return "exceededCpu";
  if (/exceeded (its )?memory limit/i.test(message)) return "exceededMemory";
  return "exception";
}

/**
 * Seals now if a size bound is reached, else makes sure a timed flush is pending. The flush
 * runs under `ctx.waitUntil` of the request (or entrypoint call) that scheduled it.
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
 * @param {Dropped} into
 * @param {Batch} batch
 */
export function addDropped(into, batch) {
  into.batches += 1 + batch.dropped.batches;
  into.requests += batch.dropped.requests + batch.rows.reduce((n, r) => n + r.requests, 0);
  into.logs += batch.dropped.logs + batch.logs.length;
  const egress =
    (batch.dropped.egress ?? 0) + (batch.egress ?? []).reduce((n, r) => n + r.allowed + r.blocked, 0);
  if (egress) into.egress = (into.egress ?? 0) + egress;
}

/**
 * @returns {{rows: number, logs: number, unsent_batches: number, log_calls: number}} what this
 *   isolate holds, and how many plugin-log calls it took since it started.
 */
export function localStatus() {
  return { rows: current.rows.size, logs: current.logs.length, unsent_batches: unsent.length, log_calls: logCalls };
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
