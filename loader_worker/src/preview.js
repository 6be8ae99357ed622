/**
 * Previews: any stored version of a plugin, reachable before activation on its own host
 * `{id}.{PLUGYARD_PREVIEW_DOMAIN}` (default `preview.plugyard.localhost`).
 *
 * The control plane registers a preview with a signed `PUT /_plugyard/previews/{id}` carrying
 * the bundle, the env (vars and secrets) and the limits; the `Previews` Durable Object keeps it
 * until it expires. Preview requests never look at routes or experiments, run in their own
 * isolates (`preview:` loader ids) and record no live metrics; responses carry
 * `x-plugyard-preview: 1`. The id is 32 random hex digits: the URL is the capability.
 */
import { DurableObject } from "cloudflare:workers";
import { durableStub } from "./pool.js";
import { parseBody, validateBundle, validateLimits, validateStrings } from "./checks.js";
import { loaderId, workerCode } from "./loader.js";
import { json, problem } from "./problems.js";

export const DEFAULT_PREVIEW_DOMAIN = "preview.plugyard.localhost";
const ID_RE = /^[0-9a-f]{32}$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const ENV_HASH_RE = /^[0-9a-f]{16}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * @typedef {Object} PreviewMeta
 * @property {string} tenant
 * @property {string} namespace
 * @property {string} plugin
 * @property {import("./registry.js").PluginState & {secrets: Record<string, string>}} state
 * @property {number} expires_at Unix seconds.
 */

/** Registered previews, in SQLite: metadata, bundle and expiry; expired rows are pruned on write. */
export class Previews extends DurableObject {
  /** @param {DurableObjectState} ctx @param {unknown} env */
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS previews (
      id TEXT PRIMARY KEY, meta TEXT NOT NULL, bundle TEXT NOT NULL, expires_at INTEGER NOT NULL)`);
  }

  /**
   * @param {string} id @param {PreviewMeta} meta @param {object} bundle @param {number} now
   */
  put(id, meta, bundle, now) {
    this.sql.exec(`DELETE FROM previews WHERE expires_at < ?`, now);
    this.sql.exec(
      `INSERT INTO previews (id, meta, bundle, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET meta = excluded.meta, bundle = excluded.bundle,
         expires_at = excluded.expires_at`,
      id,
      JSON.stringify(meta),
      JSON.stringify(bundle),
      meta.expires_at,
    );
  }

  /** @param {string} id @param {number} now @returns {PreviewMeta | null} */
  get(id, now) {
    const rows = this.sql.exec(`SELECT meta FROM previews WHERE id = ? AND expires_at >= ?`, id, now).toArray();
    return rows.length ? JSON.parse(String(rows[0].meta)) : null;
  }

  /** @param {string} id @returns {object | null} */
  getBundle(id) {
    const rows = this.sql.exec(`SELECT bundle FROM previews WHERE id = ?`, id).toArray();
    return rows.length ? JSON.parse(String(rows[0].bundle)) : null;
  }
}

/** @param {DurableObjectNamespace} namespace The `PREVIEWS` binding. */
function previewsStub(namespace) {
  return durableStub(namespace, "previews", "Previews");
}

/** The `.domain` suffix of the last seen PREVIEW_DOMAIN (it is read on every data-plane request). */
let suffixOf = { domain: "", suffix: "" };

/**
 * The preview id of a request host, or null when the host is not under the preview domain.
 * @param {string} hostname
 * @param {{PREVIEW_DOMAIN?: string | null}} env
 * @returns {string | null}
 */
export function previewLabel(hostname, env) {
  const configured = env.PREVIEW_DOMAIN || DEFAULT_PREVIEW_DOMAIN;
  if (configured !== suffixOf.domain) suffixOf = { domain: configured, suffix: "." + configured.toLowerCase() };
  const suffix = suffixOf.suffix;
  const host = hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
  return host.endsWith(suffix) ? host.slice(0, -suffix.length) : null;
}

/**
 * Handles a verified `PUT /_plugyard/previews/{id}`.
 * @param {{PREVIEWS: DurableObjectNamespace}} env
 * @param {string} id
 * @param {Uint8Array} body
 * @param {string} requestId
 */
export async function handlePreviewPut(env, id, body, requestId) {
  const input = parseBody(body);
  const error = checkPreview(id, input);
  if (error || !input) return problem(400, "invalid-preview", error ?? "Invalid body.", requestId);
  /** @type {PreviewMeta} */
  const meta = {
    tenant: input.tenant,
    namespace: input.namespace,
    plugin: input.plugin,
    state: {
      version: input.version,
      env_hash: input.env_hash,
      vars: input.vars ?? {},
      secrets: input.secrets ?? {},
      limits: input.limits ?? null,
    },
    expires_at: input.expires_at,
  };
  await previewsStub(env.PREVIEWS).put(id, meta, input.bundle, Math.floor(Date.now() / 1000));
  return json({ status: "stored", id, expires_at: input.expires_at });
}

/** @param {string} id @param {Record<string, any> | null} input @returns {string | null} */
function checkPreview(id, input) {
  if (!ID_RE.test(id)) return "The preview id must be 32 lowercase hex digits.";
  if (!input) return "The body must be a JSON object.";
  for (const key of ["tenant", "namespace", "plugin"]) {
    if (typeof input[key] !== "string" || !NAME_RE.test(input[key])) return `${key} must be a name.`;
  }
  if (!HASH_RE.test(input.version)) return "version must be 64 hex.";
  if (!ENV_HASH_RE.test(input.env_hash)) return "env_hash must be 16 hex.";
  if (!Number.isSafeInteger(input.expires_at)) return "expires_at must be Unix seconds.";
  const bundleError = validateBundle(input.bundle);
  if (bundleError) return `bundle: ${bundleError}`;
  return validateStrings(input.vars, "vars") ?? validateStrings(input.secrets, "secrets") ?? validateLimits(input.limits);
}

/**
 * Serves a request to a preview host.
 * @param {Request} request
 * @param {{LOADER: any, PREVIEWS: DurableObjectNamespace}} env
 * @param {string} label The host's first label(s) below the preview domain.
 * @param {string} requestId
 * @returns {Promise<Response>}
 */
export async function handlePreview(request, env, label, requestId) {
  const stub = previewsStub(env.PREVIEWS);
  const meta = ID_RE.test(label) ? await stub.get(label, Math.floor(Date.now() / 1000)) : null;
  if (!meta) {
    return problem(404, "no-preview", "No preview lives at this host (unknown or expired).", requestId);
  }
  const ref = { tenant: meta.tenant, namespace: meta.namespace, plugin: meta.plugin, state: meta.state };
  let response;
  try {
    // Keyed by version and env (not by preview id): re-issued previews share one isolate,
    // which stays separate from the live one.
    const isolate = env.LOADER.get(`preview:${loaderId(ref)}`, async () => {
      const bundle = await stub.getBundle(label);
      if (!bundle) throw new Error(`preview ${label} has no bundle`);
      return workerCode(bundle, meta.state);
    });
    response = await isolate.getEntrypoint().fetch(request);
  } catch (error) {
    console.error("preview_failed", requestId, meta.tenant, meta.plugin, String(error));
    return problem(502, "plugin-failed", "The plugin failed to handle this request.", requestId);
  }
  const out = new Response(response.body, response);
  out.headers.set("x-plugyard-version", String(meta.state.version).slice(0, 12));
  out.headers.set("x-plugyard-preview", "1");
  return out;
}
