/**
 * Egress: the `Outbound` entrypoint every plugin isolate gets as its `globalOutbound`
 * (`ctx.exports.Outbound({props: {tenant, namespace, plugin}})`).
 *
 * Every `fetch()` a plugin makes arrives here. The namespace's policy is read from the current
 * snapshot at call time (not baked into the isolate), so a changed policy applies to running
 * isolates on their next request. Policy (docs/gateway-protocol.md, "Egress"):
 * - `{"allow": [], ...}` (the default) denies everything;
 * - `allow` entries are `host`, `*.suffix` (any subdomain, not the suffix itself), optionally
 *   with `:port` (then only that port; without it any port);
 * - `methods` (null: any) restricts the HTTP methods.
 * A denied fetch rejects in the plugin with an Error naming the host and the policy. `connect()`
 * (raw TCP) is always denied (workerd's message: "proxy request failed").
 *
 * Allowed and denied fetches are counted per namespace twice: since the process started, in the
 * signed health (`egress`), and, when metrics are on, per destination host and minute in the
 * metrics batches (metrics.js, `recordEgress`; docs/metrics.md, "Egress"). `connect()` never
 * reaches this entrypoint, so it is in neither.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { getSnapshot } from "./snapshot.js";
import { DENY_ALL, egressDenial } from "./egress-policy.js";
import { recordEgress } from "./metrics.js";

export { validateEgress } from "./egress-policy.js";

/** Per-namespace counters since this process started: `tenant/namespace` → counts. */
const counts = new Map();

/**
 * @param {string} key
 * @param {"allowed" | "denied"} kind
 */
function count(key, kind) {
  let entry = counts.get(key);
  if (!entry) {
    entry = { allowed: 0, denied: 0 };
    counts.set(key, entry);
  }
  entry[kind] += 1;
}

/** @returns {Record<string, {allowed: number, denied: number}>} the counters, for health. */
export function egressCounts() {
  return Object.fromEntries(counts);
}

export class Outbound extends WorkerEntrypoint {
  /**
   * A plugin's outbound fetch.
   * @param {Request} request
   * @returns {Promise<Response>}
   */
  async fetch(request) {
    const props = /** @type {any} */ (this.ctx).props ?? {};
    const key = `${props.tenant}/${props.namespace}`;
    const env = /** @type {any} */ (this.env);
    const snapshot = await getSnapshot(env, this.ctx);
    const policy = snapshot.namespaces.get(key)?.egress ?? DENY_ALL;
    const url = new URL(request.url);
    const denial = egressDenial(policy, url, request.method);
    recordEgress(env, this.ctx, props, url.host, !denial);
    if (denial) {
      count(key, "denied");
      throw new Error(`Plugyard egress policy of namespace ${key} blocked this request: ${denial}.`);
    }
    count(key, "allowed");
    // Self-hosted: a network service limited to public addresses unless PLUGYARD_EGRESS_PRIVATE=1
    // (tests, private networks). On Cloudflare there is no such binding: the platform's fetch.
    const network = env.EGRESS_PRIVATE_NETWORKS === "1" ? env.EGRESS_PRIVATE : env.EGRESS;
    return network ? network.fetch(request) : fetch(request);
  }

  // No connect() handler on purpose: workerd then rejects a plugin's `connect()` (`socket.opened`)
  // with "proxy request failed". A handler that throws would let `opened` resolve on a dead socket.
}

/**
 * The `globalOutbound` for a plugin isolate.
 * @param {ExecutionContext} ctx
 * @param {{tenant: string, namespace: string, plugin: string}} props
 */
export function outboundFor(ctx, props) {
  return /** @type {any} */ (ctx).exports.Outbound({ props });
}
