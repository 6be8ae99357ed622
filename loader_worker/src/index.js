/**
 * Plugyard gateway Worker. Only routes: `/_plugyard/*` goes to the control API, everything
 * else to the data plane. The `Registry` Durable Object class is exported for the binding.
 */
import { handleControl } from "./control.js";
import { handleDataPlane } from "./data-plane.js";
import { problem } from "./problems.js";

export { Registry } from "./registry.js";
export { Previews } from "./preview.js";
export { MetricsOutbox } from "./metrics-outbox.js";
export { PluginLogs } from "./plugin-logs.js";
export { Outbound } from "./outbound.js";
export { Events } from "./experiment-events.js";

/**
 * @typedef {Object} Env
 * @property {any} LOADER Worker Loader binding.
 * @property {DurableObjectNamespace} REGISTRY
 * @property {string | null} SIGNING_SECRET From PLUGYARD_GATEWAY_SECRET.
 * @property {string | null} [NONCE_WINDOW_S] From PLUGYARD_NONCE_WINDOW_S (default 300).
 * @property {DurableObjectNamespace} PREVIEWS Registered preview URLs (src/preview.js).
 * @property {string | null} [PREVIEW_DOMAIN] From PLUGYARD_PREVIEW_DOMAIN (default
 *   preview.plugyard.localhost).
 * @property {DurableObjectNamespace} METRICS_OUTBOX Sealed metrics batches awaiting delivery.
 * @property {Fetcher} [INGEST] Network service used to reach PLUGYARD_INGEST_URL.
 * @property {string | null} [INGEST_URL] From PLUGYARD_INGEST_URL; unset turns metrics off.
 * @property {string | null} [METRICS_FLUSH_MS] From PLUGYARD_METRICS_FLUSH_MS (default 2000).
 * @property {string | null} [METRICS_MAX_PENDING] From PLUGYARD_METRICS_MAX_PENDING (default 2000).
 */

/** Per-isolate request id prefix (random, set on the first request) and counter. */
let idPrefix = "";
let idCount = 0;

/**
 * A request id: a random per-isolate prefix and a counter, unique across isolates and
 * processes without a `crypto.randomUUID()` per request. (Random values cannot be drawn at
 * module scope in Workers, hence the lazy prefix.)
 * @returns {string}
 */
export function nextRequestId() {
  if (!idPrefix) {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    idPrefix = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  idCount += 1;
  return `${idPrefix}-${idCount.toString(36)}`;
}

export default {
  /**
   * @param {Request} request
   * @param {Env} env
   * @param {ExecutionContext} ctx
   * @returns {Promise<Response>}
   */
  async fetch(request, env, ctx) {
    const requestId = nextRequestId();
    // Parsed once here and handed to the data plane.
    const url = new URL(request.url);
    try {
      if (url.pathname.startsWith("/_plugyard/")) return await handleControl(request, env, ctx, requestId);
      return await handleDataPlane(request, env, ctx, requestId, url);
    } catch (error) {
      // E.g. the Registry is unreachable: still answer a problem, never a stack trace.
      console.error("request_failed", requestId, String(error));
      return problem(500, "internal-error", "The gateway failed to handle this request.", requestId);
    }
  },
};
