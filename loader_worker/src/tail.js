/**
 * The tail entrypoint every plugin isolate gets (`tails: [ctx.exports.Tail({props})]`).
 *
 * workerd calls `tail(events)` in the gateway's own Worker after a plugin invocation has
 * finished (asynchronously, typically a few ms after the response), with one TraceItem per
 * invocation: `outcome`, `logs` (console calls) and `exceptions`. The props tag them with the
 * isolate's tenant, namespace, plugin, version and variant, and carry the plugin's secret values
 * so its logs are masked before they leave the gateway.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { metricsEnabled, recordTrace, secretValues } from "./metrics.js";

export class Tail extends WorkerEntrypoint {
  /** @param {any[]} events TraceItems. */
  tail(events) {
    const props = /** @type {any} */ (this.ctx).props;
    if (!props) return;
    for (const event of events) recordTrace(this.env, this.ctx, props, event);
  }
}

/**
 * The `tails` wiring for a plugin isolate, or undefined when metrics are off.
 * @param {any} env
 * @param {ExecutionContext} ctx
 * @param {import("./metrics.js").Tags} tags
 * @param {{vars?: Record<string, unknown>, secrets?: Record<string, unknown>, secret_names?: string[]}} state
 * @returns {unknown[] | undefined}
 */
export function tailsFor(env, ctx, tags, state) {
  if (!metricsEnabled(env)) return undefined;
  const exports = /** @type {any} */ (ctx).exports;
  return [exports.Tail({ props: { ...tags, secrets: secretValues(state) } })];
}
