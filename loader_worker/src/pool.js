/**
 * Running as one of several workerd processes of a gateway pool (platform/plugyard/gateway/
 * supervisor.py; docs/operations.md, "Gateway pool"). Inactive unless PLUGYARD_GATEWAY_ROLE=serve.
 *
 * - Durable Objects live in one "state" process only (SQLite files cannot be shared between
 *   processes: workerd aborts on SQLITE_BUSY). A serving process reaches them over the state
 *   process's debug port (`STATE_PORT.connect(PLUGYARD_GATEWAY_STATE_ADDRESS)`, loopback only)
 *   with the same RPC methods; {@link durableStub} hides the difference.
 * - Each plugin dispatch is written to stdout before the plugin runs (`plugyard:> seq id`) and
 *   when it settles (`plugyard:< seq`). The write is synchronous, so when a plugin blocks the
 *   process (an endless loop) the supervisor still knows what was in flight and which dispatch
 *   came last: that is how it attributes the hang.
 * - The number of isolates this process has loaded is reported by `GET /_plugyard/process`.
 * - Recycling (`POST /_plugyard/process/drain`, signed): before the supervisor sends SIGTERM it
 *   tells the process to *hold* every data-plane request that reaches it for `hold_ms`. The
 *   supervisor sends SIGTERM a moment later, while those requests are still held: workerd then
 *   finishes them with `Connection: close` (a Worker cannot set that header itself), so a
 *   keep-alive client reconnects (to another process) instead of having its next request cut
 *   off by the drain closing an idle connection.
 */
import { env as workerEnv } from "cloudflare:workers";

/** Service name of the gateway Worker in the generated config. */
const SERVICE = "gateway";

let isolatesLoaded = 0;
let dispatchSeq = 0;
/** Until when (ms since the epoch) data-plane requests are held; 0: not draining. */
let holdUntil = 0;

/** Longest hold the supervisor may ask for. */
export const MAX_HOLD_MS = 10_000;

/** @returns {boolean} whether this process is a pool member that serves traffic. */
export function pooled() {
  return workerEnv?.GATEWAY_ROLE === "serve";
}

/** Counts an isolate the Worker Loader actually started (its code callback ran). */
export function noteIsolateLoaded() {
  isolatesLoaded += 1;
}

/** @returns {{role: string, isolates: number, dispatched: number, draining: boolean}} the probe's answer. */
export function processInfo() {
  return {
    role: workerEnv?.GATEWAY_ROLE ?? "single",
    isolates: isolatesLoaded,
    dispatched: dispatchSeq,
    draining: holdUntil > 0,
  };
}

/**
 * Starts draining: data-plane requests are held for `holdMs` from now (see the module comment).
 * Draining cannot be undone: the supervisor sends SIGTERM next.
 * @param {number} holdMs 0..{@link MAX_HOLD_MS}.
 */
export function startDrain(holdMs) {
  holdUntil = Date.now() + holdMs;
}

/**
 * While draining, a promise that settles when the request may go on; null otherwise (the hot
 * path pays one comparison).
 * @returns {Promise<void> | null}
 */
export function drainHold() {
  if (holdUntil === 0) return null;
  const wait = holdUntil - Date.now();
  return wait > 0 ? new Promise((resolve) => setTimeout(resolve, wait)) : null;
}

/**
 * Marks a plugin dispatch as in flight (pool members only).
 * @param {string} id `{tenant}/{namespace}/{plugin}@{version}`.
 * @returns {number} a token for {@link dispatchSettled} (0 when not pooled).
 */
export function dispatchStarted(id) {
  if (!pooled()) return 0;
  dispatchSeq += 1;
  console.log(`plugyard:> ${dispatchSeq} ${id}`);
  return dispatchSeq;
}

/** @param {number} token From {@link dispatchStarted}. */
export function dispatchSettled(token) {
  if (token) console.log(`plugyard:< ${token}`);
}

/**
 * A stub of a Durable Object held by the state process, with the local stub's RPC methods.
 * Each call opens its own debug-port connection: workerd ties I/O objects to the request that
 * created them, so a connection cannot be cached across requests (measured: ~1 ms on loopback,
 * paid on snapshot refreshes, cold loads, pushes and metrics flushes, never on warm requests).
 * @param {string} className
 * @param {string} id
 */
function remoteStub(className, id) {
  return new Proxy(
    {},
    {
      get(_, method) {
        if (typeof method !== "string" || method === "then") return undefined;
        return async (/** @type {unknown[]} */ ...args) => {
          const client = await workerEnv.STATE_PORT.connect(String(workerEnv.STATE_ADDRESS));
          const target = await client.getActor(SERVICE, className, id);
          return await target[method](...args);
        };
      },
    },
  );
}

/**
 * The stub of the named object of a Durable Object namespace: local, or in the state process
 * when this is a serving pool member.
 * @param {DurableObjectNamespace} namespace
 * @param {string} name
 * @param {string} className The exported class (as in the config's durableObjectNamespaces).
 */
export function durableStub(namespace, name, className) {
  const id = namespace.idFromName(name);
  if (!pooled() || !workerEnv.STATE_ADDRESS || !workerEnv.STATE_PORT) return namespace.get(id);
  return /** @type {any} */ (remoteStub(className, id.toString()));
}
