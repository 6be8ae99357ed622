/**
 * RFC 9457 problem responses. Every error the gateway produces goes through `problem()`, so
 * end users and the control plane see one shape; never put stack traces or plugin messages here.
 */

const TYPE_BASE = "https://plugyard.dev/problems/";

/**
 * Titles per type slug, so callers only pass what varies. Every slug passed to `problem()` in
 * src/ must be listed here (test/problems.test.js checks it).
 */
export const TITLES = Object.freeze({
  "unsigned": "Request is not signed",
  "bad-signature": "Signature does not verify",
  "stale-request": "Request timestamp is outside the accepted window",
  "replayed-request": "Request nonce was already used",
  "invalid-push": "Push body is invalid",
  "invalid-drain": "Drain body is invalid",
  "stale-revision": "A newer revision is already held",
  "not-found": "No such control endpoint",
  "method-not-allowed": "Method not allowed",
  "gateway-misconfigured": "Gateway is not configured",
  "gateway-unavailable": "Gateway state is unavailable",
  "no-route": "No route matches this request",
  "no-active-version": "Plugin has no active version",
  "plugin-failed": "Plugin failed",
  "plugin-quarantined": "Plugin version is quarantined",
  "invalid-quarantine": "Quarantine body is invalid",
  "unknown-plugin": "No such plugin",
  "invalid-preview": "Preview body is invalid",
  "no-preview": "No such preview",
  "invalid-bundle": "Bundle is invalid",
  "bundle-rejected": "Bundle was rejected by the runtime",
  "internal-error": "Internal gateway error",
});

/**
 * Builds a problem+json response.
 * @param {number} status HTTP status.
 * @param {keyof typeof TITLES | string} slug Stable type slug (the last URL segment of `type`).
 * @param {string} detail Human-readable detail, safe for end users.
 * @param {string} instance Request id.
 * @param {Record<string, unknown>} [extra] Extension members (e.g. `held_revision`).
 * @param {HeadersInit} [headers] Extra response headers.
 * @returns {Response}
 */
export function problem(status, slug, detail, instance, extra = {}, headers = {}) {
  const body = {
    type: TYPE_BASE + slug,
    title: TITLES[slug] ?? slug,
    status,
    detail,
    instance,
    ...extra,
  };
  const response = new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", "cache-control": "no-store" },
  });
  for (const [name, value] of new Headers(headers)) response.headers.set(name, value);
  return response;
}

/**
 * A JSON success response.
 * @param {unknown} body
 * @param {number} [status]
 * @returns {Response}
 */
export function json(body, status = 200) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}
