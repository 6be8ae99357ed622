/**
 * End-user traffic: route → namespace → plugin → isolate → forward.
 */
import { pluginEntrypoint } from "./loader.js";
import { problem } from "./problems.js";
import { getSnapshot } from "./snapshot.js";
import { handlePreview, previewLabel } from "./preview.js";
import { metricsTags, recordRequest } from "./metrics.js";
import { tailsFor } from "./tail.js";
import { outboundFor } from "./outbound.js";
import { dispatchSettled, dispatchStarted } from "./pool.js";
import { chooseServing, decorate } from "./experiments.js";
import { noteExposure, pluginBinding, scopeOf } from "./experiment-events.js";

/**
 * @param {Request} request
 * @param {import("./index.js").Env} env
 * @param {ExecutionContext} ctx
 * @param {string} requestId
 * @returns {Promise<Response>}
 */
export async function handleDataPlane(request, env, ctx, requestId) {
  // Preview hosts never fall through to routes, experiments or live metrics.
  const preview = previewLabel(new URL(request.url).hostname, env);
  if (preview !== null) return handlePreview(request, env, preview, requestId);
  let snapshot;
  try {
    snapshot = await getSnapshot(env, ctx);
  } catch (error) {
    console.error("snapshot_load_failed", requestId, String(error));
    return problem(503, "gateway-unavailable", "The gateway could not load its state.", requestId);
  }
  const url = new URL(request.url);
  const target = snapshot.routes.match(url.hostname, url.pathname);
  if (!target) {
    return problem(404, "no-route", `No route matches ${url.hostname}${url.pathname}.`, requestId);
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
  const serving = await chooseServing(request, env, ns, target.plugin, state);
  const served = serving.state;
  // A version that hung a gateway process is not routed (docs/operations.md, "Quarantine").
  const quarantined = state.quarantine?.[served.version];
  if (quarantined) {
    const detail = `Version ${served.version.slice(0, 12)} of plugin ${target.plugin} is quarantined: ${quarantined}`;
    return problem(503, "plugin-quarantined", detail, requestId);
  }
  const tags = metricsTags(ns, target.plugin, served, serving.variant ?? undefined);
  const scope = scopeOf(ns, target.plugin, serving);
  noteExposure(env, ctx, scope, serving.visitor ?? null);
  const startedAt = Date.now();
  let response;
  try {
    const ref = { tenant: ns.tenant, namespace: ns.namespace, plugin: target.plugin, state: served };
    // A getter: the tail wiring is only built when the isolate is loaded (cold).
    const wiring = {
      get tails() { return tailsFor(env, ctx, tags, served); },
      get env() { return { PLUGYARD: pluginBinding(ctx, scope) }; },
      // Egress: the namespace's policy, looked up on every outbound call (src/outbound.js).
      get globalOutbound() {
        return outboundFor(ctx, { tenant: ns.tenant, namespace: ns.namespace, plugin: target.plugin });
      },
    };
    const entrypoint = pluginEntrypoint(env, ref, wiring);
    const flight = dispatchStarted(`${ns.tenant}/${ns.namespace}/${target.plugin}@${served.version}`);
    try {
      response = await entrypoint.fetch(request);
    } finally {
      dispatchSettled(flight);
    }
  } catch (error) {
    // Logged for operators only: end users never see the plugin's message or stack.
    console.error("plugin_failed", requestId, target.nsKey, target.plugin, String(error));
    recordRequest(env, ctx, tags, { status: 502, failed: true, startedAt });
    const failed = problem(502, "plugin-failed", "The plugin failed to handle this request.", requestId);
    decorate(failed, serving);
    return failed;
  }
  const ms = recordRequest(env, ctx, tags, { status: response.status, failed: false, startedAt });
  const out = new Response(response.body, response);
  out.headers.set("x-plugyard-version", served.version.slice(0, 12));
  decorate(out, serving);
  out.headers.append("server-timing", `plugin;dur=${ms}`);
  return out;
}
