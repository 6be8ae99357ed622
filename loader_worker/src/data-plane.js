/**
 * End-user traffic: route → namespace → plugin → isolate → forward.
 *
 * This is the gateway's hot path. What only depends on the served plugin state (loader id,
 * metric tags, experiment scope, the loader's code callback) is computed once per state object
 * and reused ({@link planFor}); per request there is one route lookup and one `LOADER.get`, and
 * the plugin's response is returned as it is. It is only copied (a fetched response's headers
 * are immutable) to add headers: an experiment's, or the diagnostic ones a request asks for with
 * {@link DEBUG_HEADER}. That copy cost about 7-10 % of a warm request's CPU when it was made for
 * every request (docs/benchmarks.md, "Profiling notes: gateway hot path").
 */
import { codeCallback, loaderId } from "./loader.js";
import { problem } from "./problems.js";
import { getSnapshot, heldSnapshot } from "./snapshot.js";
import { handlePreview, previewLabel } from "./preview.js";
import { metricsTags, recordRequest } from "./metrics.js";
import { logsBindingFor } from "./plugin-logs.js";
import { outboundFor } from "./outbound.js";
import { dispatchSettled, dispatchStarted, drainHold } from "./pool.js";
import { chooseServing, decorate } from "./experiments.js";
import { noteExposure, pluginBinding, scopeOf } from "./experiment-events.js";

/**
 * A request carrying this header (any value) gets the diagnostic headers `x-plugyard-version`
 * (the serving version's first 12 hex digits) and `server-timing: plugin;dur=<ms>`
 * (docs/gateway-protocol.md, "Diagnostic headers").
 */
export const DEBUG_HEADER = "x-plugyard-debug";

/**
 * What every request to one served plugin state needs, built on its first request.
 * @typedef {Object} Plan
 * @property {string} id The loader id.
 * @property {string} flight `{tenant}/{namespace}/{plugin}@{version}` for the pool's dispatch log.
 * @property {import("./metrics.js").Tags} tags
 * @property {import("./experiment-events.js").Scope | null} scope
 * @property {() => Promise<Record<string, unknown>>} load The Worker Loader code callback.
 */

/**
 * Plans per served state object. Snapshot states are replaced, never changed, when a push or a
 * quarantine is applied, and experiment variant states are cached per state (experiments.js),
 * so a state object always describes the same isolate and the entry goes away with it.
 * @type {WeakMap<object, Plan>}
 */
const plans = new WeakMap();

/**
 * @param {import("./index.js").Env} env
 * @param {ExecutionContext} ctx Only its `exports` are kept (the same object for every request).
 * @param {{tenant: string, namespace: string}} ns
 * @param {string} plugin
 * @param {import("./experiments.js").Serving} serving
 * @returns {Plan}
 */
function planFor(env, ctx, ns, plugin, serving) {
  const served = serving.state;
  let plan = plans.get(served);
  if (plan) return plan;
  const tags = metricsTags(ns, plugin, served, serving.variant ?? undefined);
  const scope = scopeOf(ns, plugin, serving);
  // The callback runs later, under whichever request finds the isolate cold: it must not hold
  // the first request's context, only the Worker's exports (loopback entrypoints).
  const loopback = /** @type {any} */ ({ exports: /** @type {any} */ (ctx).exports });
  const ref = { tenant: ns.tenant, namespace: ns.namespace, plugin, state: served };
  // Getters: the logs, env and egress wiring are only built when the isolate is loaded (cold).
  const wiring = {
    get logs() {
      return logsBindingFor(env, loopback, tags, served);
    },
    get env() {
      return { PLUGYARD: pluginBinding(loopback, scope) };
    },
    // Egress: the namespace's policy, looked up on every outbound call (src/outbound.js).
    get globalOutbound() {
      return outboundFor(loopback, { tenant: ns.tenant, namespace: ns.namespace, plugin });
    },
  };
  plan = {
    id: loaderId(ref),
    flight: `${ns.tenant}/${ns.namespace}/${plugin}@${served.version}`,
    tags,
    scope,
    load: codeCallback(env, ref, wiring),
  };
  plans.set(served, plan);
  return plan;
}

/**
 * @param {Request} request
 * @param {import("./index.js").Env} env
 * @param {ExecutionContext} ctx
 * @param {string} requestId
 * @param {URL} [url] The parsed request URL, when the caller already has it.
 * @returns {Promise<Response>}
 */
export async function handleDataPlane(request, env, ctx, requestId, url = new URL(request.url)) {
  const hold = drainHold(); // a recycled pool process holds requests until SIGTERM (pool.js)
  if (hold) await hold;
  const host = url.hostname;
  // Preview hosts never fall through to routes, experiments or live metrics.
  const preview = previewLabel(host, env);
  if (preview !== null) return handlePreview(request, env, preview, requestId);
  let snapshot;
  try {
    // Synchronous when the held snapshot is fresh enough (nearly always).
    snapshot = heldSnapshot(env, ctx) ?? (await getSnapshot(env, ctx));
  } catch (error) {
    console.error("snapshot_load_failed", requestId, String(error));
    return problem(503, "gateway-unavailable", "The gateway could not load its state.", requestId);
  }
  const target = snapshot.routes.match(host, url.pathname);
  if (!target) {
    return problem(404, "no-route", `No route matches ${host}${url.pathname}.`, requestId);
  }
  const ns = snapshot.namespaces.get(target.nsKey);
  const state = ns && Object.hasOwn(ns.plugins, target.plugin) ? ns.plugins[target.plugin] : null;
  if (!ns || !state || !state.version) {
    return problem(
      503,
      "no-active-version",
      `Plugin ${target.plugin} has no active version.`,
      requestId,
    );
  }
  // An experiment may pick another version (a variant) for this visitor (experiments.js).
  // Synchronous unless a preview token has to be verified.
  let serving = chooseServing(request, env, ns, target.plugin, state);
  if (serving instanceof Promise) serving = await serving;
  const served = serving.state;
  // A version that hung a gateway process is not routed (docs/operations.md, "Quarantine").
  const quarantined = state.quarantine?.[served.version];
  if (quarantined) {
    const detail = `Version ${served.version.slice(0, 12)} of plugin ${target.plugin} is quarantined: ${quarantined}`;
    return problem(503, "plugin-quarantined", detail, requestId);
  }
  const plan = planFor(env, ctx, ns, target.plugin, serving);
  if (serving.visitor) noteExposure(env, ctx, plan.scope, serving.visitor);
  const startedAt = Date.now();
  let response;
  try {
    // A WorkerStub is tied to the request that got it, so LOADER.get runs per request (cheap
    // when warm); the callback only runs when the isolate is cold.
    const entrypoint = env.LOADER.get(plan.id, plan.load).getEntrypoint();
    const flight = dispatchStarted(plan.flight);
    try {
      response = await entrypoint.fetch(request);
    } finally {
      dispatchSettled(flight);
    }
  } catch (error) {
    // Logged for operators only: end users never see the plugin's message or stack.
    console.error("plugin_failed", requestId, target.nsKey, target.plugin, String(error));
    recordRequest(env, ctx, plan.tags, { status: 502, failed: true, startedAt, error });
    const failed = problem(502, "plugin-failed", "The plugin failed to handle this request.", requestId);
    decorate(failed, serving);
    return failed;
  }
  const ms = recordRequest(env, ctx, plan.tags, { status: response.status, failed: false, startedAt });
  const debug = request.headers.has(DEBUG_HEADER);
  if (!debug && !serving.experiment) return response; // the hot path: no copy
  // Headers of a fetched response are immutable: copy it (the body is passed through, not read).
  const out = new Response(response.body, response);
  if (debug) {
    out.headers.set("x-plugyard-version", served.version.slice(0, 12));
    out.headers.append("server-timing", `plugin;dur=${ms}`);
  }
  decorate(out, serving);
  return out;
}
