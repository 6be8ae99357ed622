/**
 * The isolate's in-memory copy of every namespace (metadata and routes, never bundle code).
 *
 * - Cold isolate: the first request loads it from the Registry once (a restarted workerd serves
 *   the last pushed state without any call from the control plane).
 * - A push handled in this isolate is applied right away (live on the very next request).
 * - At most every {@link REFRESH_INTERVAL_MS}, a request schedules (ctx.waitUntil) a background
 *   fetch of the namespaces applied since our generation, so other isolates and processes
 *   sharing the storage converge.
 */
import { registryStub } from "./registry.js";
import { RouteIndex } from "./routing.js";
import { pooled } from "./pool.js";
import { rememberBundle } from "./bundle-cache.js";

export const REFRESH_INTERVAL_MS = 1000;

/** @typedef {import("./registry.js").NamespaceState} NamespaceState */

export class Snapshot {
  constructor() {
    this.generation = 0;
    /** @type {Map<string, NamespaceState>} */
    this.namespaces = new Map();
    this.routes = new RouteIndex();
  }

  /**
   * Applies one namespace's state unless we already hold the same or a later application.
   * @param {NamespaceState} state
   */
  apply(state) {
    const key = `${state.tenant}/${state.namespace}`;
    const held = this.namespaces.get(key);
    if (held && held.seq >= state.seq) return;
    this.namespaces.set(key, state);
    this.routes.setNamespaceRoutes(key, state.seq, state.routes);
  }

  /**
   * Applies a batch of changes from `Registry.changesSince`.
   * @param {{generation: number, namespaces: NamespaceState[]}} changes
   */
  applyChanges(changes) {
    for (const state of changes.namespaces) this.apply(state);
    this.generation = Math.max(this.generation, changes.generation);
  }
}

/** @type {Snapshot | null} */
let current = null;
/** @type {Promise<Snapshot> | null} */
let loading = null;
/** @type {Promise<void> | null} */
let refreshing = null;
let lastCheckMs = 0;

/**
 * The held snapshot when it can serve this request without waiting (schedules a background
 * refresh when due), or null when the caller must await {@link getSnapshot}: nothing loaded yet,
 * or a pool member whose last check is too old. Keeps the hot path free of awaits.
 * @param {{REGISTRY: DurableObjectNamespace}} env
 * @param {ExecutionContext} ctx
 * @returns {Snapshot | null}
 */
export function heldSnapshot(env, ctx) {
  if (!current) return null;
  const now = Date.now();
  if (now - lastCheckMs < REFRESH_INTERVAL_MS) return current;
  if (pooled()) return null;
  if (!refreshing) {
    lastCheckMs = now;
    const snapshot = current;
    refreshing = registryStub(env.REGISTRY)
      .changesSince(snapshot.generation)
      .then((changes) => snapshot.applyChanges(changes))
      .catch((error) => console.error("snapshot_refresh_failed", String(error)))
      .finally(() => {
        refreshing = null;
      });
    ctx.waitUntil(refreshing);
  }
  return current;
}

/**
 * The current snapshot; loads it on a cold isolate and schedules a refresh when due.
 * @param {{REGISTRY: DurableObjectNamespace}} env
 * @param {ExecutionContext} ctx
 * @returns {Promise<Snapshot>}
 */
export async function getSnapshot(env, ctx) {
  const held = heldSnapshot(env, ctx);
  if (held) return held;
  if (!current) {
    loading ??= loadSnapshot(env).finally(() => {
      loading = null;
    });
    return await loading;
  }
  return await refreshPooled(env, Date.now());
}

/**
 * In a gateway pool a push usually lands on another process, so a request that finds the last
 * check more than {@link REFRESH_INTERVAL_MS} old fetches the changes itself (one RPC to the state
 * process) before it is served: no request sees a state older than that after a push. Requests
 * arriving meanwhile do the same rather than await another request's promise (workerd refuses
 * I/O across requests). A failed fetch (state process down) serves what is held.
 * @param {{REGISTRY: DurableObjectNamespace}} env
 * @param {number} now
 * @returns {Promise<Snapshot>}
 */
async function refreshPooled(env, now) {
  const snapshot = /** @type {Snapshot} */ (current);
  if (now - lastCheckMs < REFRESH_INTERVAL_MS) return snapshot;
  try {
    snapshot.applyChanges(await registryStub(env.REGISTRY).changesSince(snapshot.generation));
  } catch (error) {
    console.error("snapshot_refresh_failed", String(error));
  }
  lastCheckMs = Math.max(lastCheckMs, now);
  return snapshot;
}

/**
 * @param {{REGISTRY: DurableObjectNamespace}} env
 * @returns {Promise<Snapshot>}
 */
async function loadSnapshot(env) {
  const snapshot = new Snapshot();
  snapshot.applyChanges(await registryStub(env.REGISTRY).changesSince(0));
  if (!current) {
    current = snapshot;
    lastCheckMs = Date.now();
  }
  return current;
}

/**
 * Applies a push this isolate just stored, so it is live on the next request. The pushed
 * bundles are kept in memory (loader.js, `rememberBundle`): the first request to a new version
 * then starts its isolate without a round trip to the Registry.
 * @param {NamespaceState} state
 * @param {number} generation The Registry generation after the push.
 * @param {Record<string, import("./registry.js").Bundle>} [bundles] The push's bundles by hash.
 */
export function applyPushed(state, generation, bundles = {}) {
  for (const [hash, bundle] of Object.entries(bundles)) rememberBundle(hash, bundle);
  if (!current) return; // the first data-plane request will load it from the Registry
  current.apply(state);
  // Only advance if no other push happened in between; otherwise the refresh fetches it.
  if (generation === current.generation + 1) current.generation = generation;
}
