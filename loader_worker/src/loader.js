/**
 * Starting plugin isolates with the Worker Loader binding.
 *
 * Loader ids include the version's content hash and the env hash, so a new version or new vars
 * get a new isolate (loaded isolates cannot be evicted on demand) and the same code in two
 * tenants gets two isolates. Code is fetched only inside the callback, i.e. only when the loader
 * has no warm isolate for the id: from this isolate's memory when the version was pushed here
 * recently, else from the Registry.
 */
import { registryStub } from "./registry.js";
import { noteIsolateLoaded } from "./pool.js";
import { rememberBundle, rememberedBundle } from "./bundle-cache.js";
import { LOGS_BINDING, shimmed } from "./plugin-shim.js";

/** Used when a bundle carries no compatibility date. */
const DEFAULT_COMPATIBILITY_DATE = "2025-11-01";

/**
 * @typedef {import("./registry.js").Bundle} Bundle
 * @typedef {import("./registry.js").PluginState} PluginState
 */

/**
 * @typedef {Object} PluginRef
 * @property {string} tenant
 * @property {string} namespace
 * @property {string} plugin
 * @property {PluginState} state Must have a non-null version.
 */

/**
 * The loader id: `{tenant}/{namespace}/{plugin}@{version}+{env_hash}`.
 * @param {PluginRef} ref
 * @returns {string}
 */
export function loaderId(ref) {
  // An experiment variant gets its own isolate: its metrics and conversions are tagged with it.
  const variant = ref.state.variant ? `#${ref.state.variant}` : "";
  return `${ref.tenant}/${ref.namespace}/${ref.plugin}@${ref.state.version}+${ref.state.env_hash}${variant}`;
}

/**
 * Decodes standard base64 into bytes.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Converts a stored module value into the Worker Loader module format.
 * @param {Record<string, unknown>} value One of {js}, {cjs}, {text}, {json}, {data}, {wasm}.
 * @returns {Record<string, unknown>}
 */
export function toLoaderModule(value) {
  if ("data" in value) return { data: decodeBase64(String(value.data)).buffer };
  if ("wasm" in value) return { wasm: decodeBase64(String(value.wasm)).buffer };
  return value;
}

/**
 * @typedef {Object} Wiring Per-isolate entrypoints of the gateway.
 * @property {unknown} [globalOutbound] Egress; defaults to null (no network), never the gateway's own.
 * @property {unknown} [logs] The `PluginLogs` binding: when set, the isolate is loaded behind the
 *   generated main module that captures its console output and exceptions (plugin-shim.js).
 * @property {Record<string, unknown>} [env] Extra env bindings (e.g. `PLUGYARD`).
 */

/**
 * Builds the Worker Loader code object for a bundle.
 * @param {Bundle} bundle
 * @param {PluginState} state
 * @param {Wiring} [wiring]
 */
export function workerCode(bundle, state, wiring = {}) {
  /** @type {Record<string, unknown>} */
  let modules = {};
  for (const [name, value] of Object.entries(bundle.modules)) modules[name] = toLoaderModule(value);
  let mainModule = bundle.mainModule;
  // Secrets (pushed over the signed channel) win over a var of the same name.
  /** @type {Record<string, unknown>} */
  const env = { ...state.vars, ...(state.secrets ?? {}), ...(wiring.env ?? {}) };
  const logs = wiring.logs;
  if (logs) {
    ({ mainModule, modules } = shimmed(modules, mainModule));
    env[LOGS_BINDING] = logs;
  }
  /** @type {Record<string, unknown>} */
  const code = {
    compatibilityDate: bundle.compatibilityDate || DEFAULT_COMPATIBILITY_DATE,
    compatibilityFlags: bundle.compatibilityFlags ?? [],
    mainModule,
    modules,
    env,
    globalOutbound: wiring.globalOutbound ?? null,
  };
  if (state.limits) code.limits = state.limits;
  return code;
}

/**
 * A version's code: from memory when held, else from the Registry (then kept).
 * @param {{REGISTRY: DurableObjectNamespace}} env
 * @param {string} version
 * @returns {Promise<Bundle>}
 */
export async function loadBundle(env, version) {
  const held = rememberedBundle(version);
  if (held) return held;
  const bundle = await registryStub(env.REGISTRY).getBundle(version);
  if (!bundle) throw new Error(`bundle ${version} is not stored`);
  rememberBundle(version, bundle);
  return bundle;
}

/**
 * The Worker Loader code callback for a plugin isolate. It only runs when the loader has no warm
 * isolate for the id, so it can be built once and reused by every request to that isolate.
 * @param {{LOADER: any, REGISTRY: DurableObjectNamespace}} env
 * @param {PluginRef} ref
 * @param {Wiring} [wiring] Passed to {@link workerCode}; its members are read only when the
 *   callback runs (getters are fine).
 * @returns {() => Promise<Record<string, unknown>>}
 */
export function codeCallback(env, ref, wiring = {}) {
  const version = /** @type {string} */ (ref.state.version);
  return async () => {
    const bundle = await loadBundle(env, version);
    noteIsolateLoaded();
    return workerCode(bundle, ref.state, wiring);
  };
}

/**
 * The default `fetch` entrypoint of a plugin's isolate (loaded on first use).
 * @param {{LOADER: any, REGISTRY: DurableObjectNamespace}} env
 * @param {PluginRef} ref
 * @param {Wiring} [wiring] Passed to {@link workerCode}; only used when the isolate is not
 *   loaded yet.
 * @returns {Fetcher}
 */
export function pluginEntrypoint(env, ref, wiring = {}) {
  return env.LOADER.get(loaderId(ref), codeCallback(env, ref, wiring)).getEntrypoint();
}
