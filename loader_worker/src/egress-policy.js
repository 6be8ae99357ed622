/**
 * The egress policy's matching rules (pure functions; src/outbound.js enforces them).
 */

/** @typedef {{allow: string[], methods: string[] | null}} EgressPolicy */

/** @type {EgressPolicy} */
export const DENY_ALL = Object.freeze({ allow: [], methods: null });

/**
 * Whether one allowlist entry matches a host and port.
 * @param {string} entry `host`, `*.suffix`, with optional `:port`.
 * @param {string} host Lower-case hostname.
 * @param {string} port The request's port (defaulted from the scheme).
 */
export function entryMatches(entry, host, port) {
  let pattern = entry;
  const colon = entry.lastIndexOf(":");
  if (colon > 0) {
    if (entry.slice(colon + 1) !== port) return false;
    pattern = entry.slice(0, colon);
  }
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return host === pattern;
}

/**
 * Checks a request against a policy; null if allowed, else the reason.
 * @param {EgressPolicy} policy
 * @param {URL} url
 * @param {string} method
 * @returns {string | null}
 */
export function egressDenial(policy, url, method) {
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  if (!policy.allow.some((entry) => entryMatches(entry, host, port))) {
    const list = policy.allow.length ? `allowlist ${policy.allow.join(", ")}` : "deny all";
    return `host "${url.host}" is not allowed (${list})`;
  }
  if (policy.methods && !policy.methods.includes(method.toUpperCase())) {
    return `method ${method} to "${url.host}" is not allowed (methods ${policy.methods.join(", ")})`;
  }
  return null;
}

/**
 * Validates the `egress` member of a push; returns an error or null.
 * @param {unknown} value
 * @returns {string | null}
 */
export function validateEgress(value) {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) return "egress must be an object.";
  const policy = /** @type {any} */ (value);
  if (!Array.isArray(policy.allow) || policy.allow.some((h) => typeof h !== "string" || !h)) {
    return "egress.allow must be an array of host strings.";
  }
  if (policy.methods != null && (!Array.isArray(policy.methods) || policy.methods.some((m) => typeof m !== "string"))) {
    return "egress.methods must be null or an array of strings.";
  }
  return null;
}

