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
export { Tail } from "./tail.js";
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

export default {
  /**
   * @param {Request} request
   * @param {Env} env
   * @param {ExecutionContext} ctx
   * @returns {Promise<Response>}
   */
  async fetch(request, env, ctx) {
    const requestId = crypto.randomUUID();
    const { pathname } = new URL(request.url);
    try {
      if (pathname.startsWith("/_plugyard/")) return await handleControl(request, env, ctx, requestId);
      return await handleDataPlane(request, env, ctx, requestId);
    } catch (error) {
      // E.g. the Registry is unreachable: still answer a problem, never a stack trace.
      console.error("request_failed", requestId, String(error));
      return problem(500, "internal-error", "The gateway failed to handle this request.", requestId);
    }
  },
};
