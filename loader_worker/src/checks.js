/**
 * Shape checks shared by the control endpoints (push, validate, previews). Each returns a
 * user-facing error string or null; none of them throws.
 */
import { decodeBase64 } from "./loader.js";
import { RESERVED_PREFIX } from "./plugin-shim.js";

const MODULE_KINDS = new Set(["js", "cjs", "text", "json", "data", "wasm"]);
const LIMIT_KEYS = new Set(["cpuMs", "subRequests"]);

/** @param {unknown} value @returns {value is Record<string, any>} */
export function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A bundle as pushed: `{mainModule, modules, compatibilityDate?, compatibilityFlags?}`.
 * @param {any} bundle
 * @returns {string | null}
 */
export function validateBundle(bundle) {
  if (!isObject(bundle) || !isObject(bundle.modules)) return "modules must be an object.";
  if (typeof bundle.mainModule !== "string" || !Object.hasOwn(bundle.modules, bundle.mainModule)) {
    return "mainModule must name one of the modules.";
  }
  if (bundle.compatibilityDate != null && !/^\d{4}-\d{2}-\d{2}$/.test(bundle.compatibilityDate)) {
    return "compatibilityDate must be YYYY-MM-DD.";
  }
  if (bundle.compatibilityFlags != null) {
    if (!Array.isArray(bundle.compatibilityFlags) || bundle.compatibilityFlags.some((f) => typeof f !== "string")) {
      return "compatibilityFlags must be a list of strings.";
    }
  }
  for (const [name, module] of Object.entries(bundle.modules)) {
    // The gateway's generated modules (plugin-shim.js, the validation probe) use these names.
    if (name.startsWith(RESERVED_PREFIX)) {
      return `module name ${name} is reserved (it starts with ${RESERVED_PREFIX}).`;
    }
    const kinds = isObject(module) ? Object.keys(module) : [];
    if (kinds.length !== 1 || !MODULE_KINDS.has(kinds[0])) {
      return `module ${name} must be one of {js}, {cjs}, {text}, {json}, {data}, {wasm}.`;
    }
    const value = module[kinds[0]];
    if (kinds[0] !== "json" && typeof value !== "string") return `module ${name} must be a string.`;
    if (kinds[0] === "data" || kinds[0] === "wasm") {
      try {
        decodeBase64(value);
      } catch {
        return `module ${name} is not valid base64.`;
      }
    }
  }
  return null;
}

/**
 * Loader limits: null, or an object with optional non-negative integer `cpuMs` / `subRequests`.
 * @param {any} limits
 * @returns {string | null}
 */
export function validateLimits(limits) {
  if (limits == null) return null;
  if (!isObject(limits)) return "limits must be an object or null.";
  for (const [key, value] of Object.entries(limits)) {
    if (!LIMIT_KEYS.has(key)) return `limits.${key} is not a known limit (cpuMs, subRequests).`;
    if (!Number.isSafeInteger(value) || value < 0) return `limits.${key} must be a non-negative integer.`;
  }
  return null;
}

/**
 * A map of env names to string values (vars, secrets).
 * @param {any} value
 * @param {string} what Name used in the error.
 * @returns {string | null}
 */
export function validateStrings(value, what) {
  if (value === undefined) return null;
  if (!isObject(value)) return `${what} must be an object.`;
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string") return `${what}.${key} must be a string.`;
  }
  return null;
}

/**
 * Decodes a JSON object body; null when it is not one.
 * @param {Uint8Array} body
 * @returns {Record<string, any> | null}
 */
export function parseBody(body) {
  try {
    const value = JSON.parse(new TextDecoder().decode(body));
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}
