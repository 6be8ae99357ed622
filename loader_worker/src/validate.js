/**
 * `POST /_plugyard/validate`: load a bundle in a throwaway isolate and report whether its main
 * module links and exports a `fetch` or `scheduled` handler. See docs/gateway-protocol.md,
 * "Validate a bundle".
 *
 * `env.LOADER.load(code)` (not `get`) is used: its isolate is not cached under an id and is freed
 * once unreferenced (measured on workerd 1.20261117.1: 200 loads grew RSS once, 600 more did not).
 * The loaded main module is a small probe that imports the plugin's main module, so linking
 * errors (syntax, missing module, missing export) surface with the runtime's own message, and
 * the probe answers which handlers the default export has. `globalOutbound: null`: top-level
 * code has no network (the runtime forbids I/O at top level anyway).
 */
import { parseBody, validateBundle, validateLimits } from "./checks.js";
import { json, problem } from "./problems.js";
import { toLoaderModule } from "./loader.js";

export const PROBE_MODULE = "__plugyard_probe__.js";
const DEFAULT_COMPATIBILITY_DATE = "2025-11-01";
const TIMEOUT_MS = 15_000;

/**
 * The probe's source: imports the main module and reports its handlers.
 * @param {string} mainModule
 * @returns {string}
 */
export function probeSource(mainModule) {
  return `import * as plugin from ${JSON.stringify("./" + mainModule)};
const exported = plugin.default;
const handlers = typeof exported === "function" ? exported.prototype : exported;
export default {
  fetch() {
    return Response.json({
      fetch: typeof handlers?.fetch === "function",
      scheduled: typeof handlers?.scheduled === "function",
    });
  },
};
`;
}

/**
 * The module a runtime error names: `at name:line:col`, else `imported from "name"`.
 * @param {string} message
 * @param {string} fallback
 */
export function moduleOf(message, fallback) {
  for (const match of message.matchAll(/\bat ([^\s:()]+):\d+(?::\d+)?\b/g)) {
    if (match[1] !== PROBE_MODULE) return match[1];
  }
  const imported = /imported from "([^"]+)"/.exec(message);
  if (imported && imported[1] !== PROBE_MODULE) return imported[1];
  return fallback;
}

/**
 * Loads a checked bundle behind the probe.
 * @param {{LOADER: any}} env
 * @param {import("./registry.js").Bundle} bundle
 * @param {Record<string, number> | null} limits
 * @returns {Promise<{ok: true, handlers: string[]} | {ok: false, detail: string, module: string}>}
 */
export async function loadAndProbe(env, bundle, limits) {
  /** @type {Record<string, unknown>} */
  const modules = {};
  for (const [name, value] of Object.entries(bundle.modules)) modules[name] = toLoaderModule(value);
  modules[PROBE_MODULE] = { js: probeSource(bundle.mainModule) };
  /** @type {Record<string, unknown>} */
  const code = {
    compatibilityDate: bundle.compatibilityDate || DEFAULT_COMPATIBILITY_DATE,
    compatibilityFlags: bundle.compatibilityFlags ?? [],
    mainModule: PROBE_MODULE,
    modules,
    env: {},
    globalOutbound: null,
  };
  if (limits) code.limits = limits;
  let timer;
  try {
    const entrypoint = env.LOADER.load(code).getEntrypoint();
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Loading the bundle took longer than ${TIMEOUT_MS} ms.`)), TIMEOUT_MS);
    });
    const response = await Promise.race([entrypoint.fetch("http://validate.plugyard.invalid/"), timeout]);
    const found = await response.json();
    const handlers = ["fetch", "scheduled"].filter((name) => found[name]);
    if (handlers.length) return { ok: true, handlers };
    const detail =
      `Handler does not export a fetch() or scheduled() function: the default export of ` +
      `${bundle.mainModule} has neither.`;
    return { ok: false, detail, module: bundle.mainModule };
  } catch (error) {
    const message = String(error).replace(/^Error: /, "");
    return { ok: false, detail: message, module: moduleOf(message, bundle.mainModule) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Handles a verified `POST /_plugyard/validate` body `{bundle, limits}`.
 * @param {{LOADER: any}} env
 * @param {Uint8Array} body
 * @param {string} requestId
 * @returns {Promise<Response>}
 */
export async function handleValidate(env, body, requestId) {
  const input = parseBody(body);
  const error =
    input === null
      ? "The body must be a JSON object."
      : validateBundle(input.bundle) ?? validateLimits(input.limits);
  if (error) return problem(400, "invalid-bundle", error, requestId);
  if (Object.hasOwn(input.bundle.modules, PROBE_MODULE)) {
    return problem(400, "invalid-bundle", `The module name ${PROBE_MODULE} is reserved.`, requestId);
  }
  const result = await loadAndProbe(env, input.bundle, input.limits);
  if (result.ok) return json({ status: "ok", handlers: result.handlers });
  return problem(422, "bundle-rejected", result.detail, requestId, { module: result.module });
}
