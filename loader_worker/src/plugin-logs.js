/**
 * The `PluginLogs` entrypoint: where a plugin isolate's captured console output and exceptions
 * arrive (sent by its generated main module, plugin-shim.js), once per request that produced
 * any. Every plugin isolate gets its own binding, `env.PLUGYARD_LOGS =
 * ctx.exports.PluginLogs({props})`, whose props (set by the gateway when it loads the isolate)
 * tag the entries with the isolate's tenant, namespace, plugin, version and variant and carry the
 * plugin's secret values, so its logs are masked before they leave the gateway. The entries
 * themselves carry no tags: a plugin can only write its own logs.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { MAX_LOGS, metricsEnabled, recordLogs, secretValues } from "./metrics.js";
import { MAX_RAW_TEXT } from "./plugin-shim.js";

/** Console levels kept as sent; anything else is stored as `log`. */
const LEVELS = new Set(["debug", "info", "log", "warn", "error"]);
/** Upper bound of a `dropped` count reported by one call (it comes from tenant code). */
const MAX_REPORTED_DROPS = 1_000_000;

/** @param {unknown} value @returns {number | undefined} a finite number, else undefined. */
function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/**
 * A string field as sent, bounded as the shim bounds it (a call made by other code may send
 * anything; masking a huge string would cost the gateway's CPU).
 * @param {unknown} value
 * @param {string} fallback
 * @returns {string}
 */
function text(value, fallback) {
  const out = typeof value === "string" ? value : fallback;
  return out.length > MAX_RAW_TEXT ? out.slice(0, MAX_RAW_TEXT) : out;
}

/** @param {unknown} value @returns {any[]} */
function list(value) {
  return Array.isArray(value) ? value : [];
}

export class PluginLogs extends WorkerEntrypoint {
  /**
   * Records one isolate's buffered entries. The input comes from tenant code: every field is
   * coerced, and at most {@link MAX_LOGS} entries are kept per call (the rest count as dropped).
   * @param {{logs?: unknown, exceptions?: unknown, dropped?: unknown}} batch
   */
  record(batch) {
    const props = /** @type {any} */ (this.ctx).props;
    if (!props || !metricsEnabled(this.env) || typeof batch !== "object" || batch === null) return;
    let room = MAX_LOGS;
    const logs = list(batch.logs).slice(0, room).map((line) => ({
      level: LEVELS.has(line?.level) ? line.level : "log",
      message: text(line?.message, ""),
      timestamp: finite(line?.timestamp),
    }));
    room -= logs.length;
    const exceptions = list(batch.exceptions).slice(0, room).map((exc) => ({
      name: text(exc?.name, "Error"),
      message: text(exc?.message, ""),
      stack: typeof exc?.stack === "string" ? text(exc.stack, "") : null,
      timestamp: finite(exc?.timestamp),
    }));
    const sent = list(batch.logs).length + list(batch.exceptions).length;
    const reported = Math.min(Math.max(0, Math.floor(finite(batch.dropped) ?? 0)), MAX_REPORTED_DROPS);
    const dropped = sent - logs.length - exceptions.length + reported;
    recordLogs(this.env, this.ctx, props, { logs, exceptions, dropped });
  }
}

/**
 * The `PLUGYARD_LOGS` binding for a plugin isolate, or undefined when metrics are off (then the
 * isolate is loaded without the generated modules).
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {import("./metrics.js").Tags} tags
 * @param {{vars?: Record<string, unknown>, secrets?: Record<string, unknown>, secret_names?: string[]}} state
 * @returns {unknown}
 */
export function logsBindingFor(env, ctx, tags, state) {
  if (!metricsEnabled(env)) return undefined;
  const exports = /** @type {any} */ (ctx).exports;
  return exports.PluginLogs({ props: { ...tags, secrets: secretValues(state) } });
}
