/**
 * The `Registry` Durable Object: the gateway's durable copy of everything the control plane
 * pushed. One instance (named {@link REGISTRY_NAME}) holds, in SQLite:
 * - `namespaces`: each namespace's revision, routes and plugin metadata (no code), plus `seq`,
 *   the generation at which it was last applied (drives incremental sync and "most recent push
 *   wins" for route patterns);
 * - `bundles`: version code, content-addressed (one row per hash), garbage-collected a while
 *   after no namespace references it;
 * - `nonces`: accepted request nonces until their timestamp leaves the window;
 * - `meta.generation`: bumped on every applied push.
 *
 * Stateless gateway isolates call it over RPC; see the method docs for the contract.
 */
import { DurableObject } from "cloudflare:workers";
import { durableStub } from "./pool.js";
import { quarantineVersion } from "./quarantine.js";

/** Name of the single Registry object. */
export const REGISTRY_NAME = "registry";

/** Seconds an unreferenced bundle is kept, so isolates with a slightly stale snapshot can load it. */
const BUNDLE_GRACE_S = 600;

/**
 * @typedef {Object} PluginState
 * @property {string | null} version 64-hex content hash of the active version, or null.
 * @property {string | null} env_hash 16-hex hash of vars + limits.
 * @property {Record<string, string>} vars
 * @property {Record<string, number> | null} limits
 */

/**
 * @typedef {Object} RouteState
 * @property {string} pattern
 * @property {string} plugin
 */

/**
 * Namespace state as held in memory by gateway isolates (no bundle code).
 * @typedef {Object} NamespaceState
 * @property {string} tenant
 * @property {string} namespace
 * @property {number} revision
 * @property {number} seq Generation at which this revision was applied.
 * @property {RouteState[]} routes
 * @property {Record<string, PluginState>} plugins
 */

/**
 * @typedef {Object} Bundle
 * @property {string} mainModule
 * @property {Record<string, Record<string, unknown>>} modules
 * @property {string} [compatibilityDate]
 * @property {string[]} [compatibilityFlags]
 */

/**
 * @typedef {Object} PushInput
 * @property {string} tenant
 * @property {string} namespace
 * @property {number} revision
 * @property {string | null} [epoch] The namespace's incarnation (its control-plane id): a push
 *   with another epoch than the held one replaces the namespace whatever its revision.
 * @property {RouteState[]} routes
 * @property {Record<string, PluginState>} plugins
 * @property {Record<string, Bundle>} bundles
 * @property {{allow: string[], methods: string[] | null}} [egress] Absent: deny all.
 */

/**
 * @typedef {{status: "applied", revision: number, generation: number, state: NamespaceState}
 *   | {status: "unchanged", revision: number}
 *   | {status: "stale", revision: number, held_revision: number}
 *   | {status: "missing-bundles", missing: string[]}} PushResult
 */

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS namespaces (
     key TEXT PRIMARY KEY, tenant TEXT NOT NULL, namespace TEXT NOT NULL,
     revision INTEGER NOT NULL, seq INTEGER NOT NULL, routes TEXT NOT NULL, plugins TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS namespaces_seq ON namespaces (seq)`,
  `CREATE TABLE IF NOT EXISTS bundles (hash TEXT PRIMARY KEY, body TEXT NOT NULL, released_at INTEGER)`,
  `CREATE TABLE IF NOT EXISTS namespace_bundles (
     ns_key TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (ns_key, hash))`,
  `CREATE INDEX IF NOT EXISTS namespace_bundles_hash ON namespace_bundles (hash)`,
  `CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at)`,
  // Egress policy per namespace (src/outbound.js); no row = deny all.
  `CREATE TABLE IF NOT EXISTS namespace_egress (key TEXT PRIMARY KEY, egress TEXT NOT NULL)`,
];

/** The gateway's durable state. */
export class Registry extends DurableObject {
  /**
   * @param {DurableObjectState} ctx
   * @param {unknown} env
   */
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.storage.transactionSync(() => {
      for (const statement of SCHEMA) this.sql.exec(statement);
      // Added after the first release: storage written before it lacks the column.
      const columns = this.sql.exec(`SELECT name FROM pragma_table_info('namespaces')`).toArray();
      if (!columns.some((c) => c.name === "epoch")) {
        this.sql.exec(`ALTER TABLE namespaces ADD COLUMN epoch TEXT`);
      }
    });
  }

  /** @returns {number} the current generation. */
  generation() {
    const rows = this.sql.exec(`SELECT value FROM meta WHERE key = 'generation'`).toArray();
    return rows.length ? Number(rows[0].value) : 0;
  }

  /**
   * Records a nonce unless it is already held; prunes expired ones first.
   * @param {string} nonce
   * @param {number} expiresAt Unix seconds after which the nonce may be forgotten.
   * @param {number} now Unix seconds.
   * @returns {boolean} true if accepted (not seen before).
   */
  acceptNonce(nonce, expiresAt, now) {
    return this.ctx.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM nonces WHERE expires_at < ?`, now);
      const seen = this.sql.exec(`SELECT 1 FROM nonces WHERE nonce = ?`, nonce).toArray();
      if (seen.length) return false;
      this.sql.exec(`INSERT INTO nonces (nonce, expires_at) VALUES (?, ?)`, nonce, expiresAt);
      return true;
    });
  }

  /**
   * Applies a namespace push if its revision is higher than the held one.
   * @param {PushInput} input Validated push body.
   * @param {number} now Unix seconds.
   * @returns {PushResult}
   */
  push(input, now) {
    const key = `${input.tenant}/${input.namespace}`;
    return this.ctx.storage.transactionSync(() => {
      const held = this.sql.exec(`SELECT revision, epoch FROM namespaces WHERE key = ?`, key).toArray();
      const epoch = input.epoch ?? null;
      // Another incarnation of the namespace (re-created in the control plane) starts afresh.
      const sameIncarnation = !held.length || held[0].epoch === null || epoch === null || held[0].epoch === epoch;
      if (held.length && sameIncarnation) {
        const heldRevision = Number(held[0].revision);
        if (input.revision === heldRevision) return { status: "unchanged", revision: heldRevision };
        if (input.revision < heldRevision) {
          return { status: "stale", revision: input.revision, held_revision: heldRevision };
        }
      }
      const referenced = new Set();
      for (const plugin of Object.values(input.plugins)) {
        if (plugin.version) referenced.add(plugin.version);
        for (const variant of plugin.experiment?.variants ?? []) referenced.add(variant.version);
      }
      const missing = [];
      for (const hash of referenced) {
        if (input.bundles[hash]) continue;
        if (!this.sql.exec(`SELECT 1 FROM bundles WHERE hash = ?`, hash).toArray().length) {
          missing.push(hash);
        }
      }
      if (missing.length) return { status: "missing-bundles", missing };

      for (const hash of referenced) {
        const bundle = input.bundles[hash];
        this.sql.exec(
          `INSERT INTO bundles (hash, body, released_at) VALUES (?, ?, NULL)
           ON CONFLICT (hash) DO UPDATE SET released_at = NULL`,
          hash,
          bundle ? JSON.stringify(bundle) : "",
        );
      }
      const previous = this.sql
        .exec(`SELECT hash FROM namespace_bundles WHERE ns_key = ?`, key)
        .toArray()
        .map((row) => String(row.hash));
      this.sql.exec(`DELETE FROM namespace_bundles WHERE ns_key = ?`, key);
      for (const hash of referenced) {
        this.sql.exec(`INSERT INTO namespace_bundles (ns_key, hash) VALUES (?, ?)`, key, hash);
      }
      for (const hash of previous) {
        if (referenced.has(hash)) continue;
        this.sql.exec(
          `UPDATE bundles SET released_at = ? WHERE hash = ? AND released_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM namespace_bundles WHERE hash = ?)`,
          now,
          hash,
          hash,
        );
      }
      this.sql.exec(
        `DELETE FROM bundles WHERE released_at IS NOT NULL AND released_at < ?`,
        now - BUNDLE_GRACE_S,
      );

      const generation = this.generation() + 1;
      this.sql.exec(
        `INSERT INTO meta (key, value) VALUES ('generation', ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        generation,
      );
      this.sql.exec(
        `INSERT INTO namespaces (key, tenant, namespace, revision, seq, routes, plugins, epoch)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET revision = excluded.revision, seq = excluded.seq,
           routes = excluded.routes, plugins = excluded.plugins,
           epoch = coalesce(excluded.epoch, namespaces.epoch)`,
        key,
        input.tenant,
        input.namespace,
        input.revision,
        generation,
        JSON.stringify(input.routes),
        JSON.stringify(input.plugins),
        epoch,
      );
      const egress = input.egress ?? { allow: [], methods: null };
      this.sql.exec(
        `INSERT INTO namespace_egress (key, egress) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET egress = excluded.egress`,
        key,
        JSON.stringify(egress),
      );
      /** @type {NamespaceState} */
      const state = {
        tenant: input.tenant,
        namespace: input.namespace,
        revision: input.revision,
        seq: generation,
        routes: input.routes,
        plugins: input.plugins,
        egress,
      };
      return { status: "applied", revision: input.revision, generation, state };
    });
  }

  /**
   * Namespaces applied after `since` (all of them for 0), in application order.
   * @param {number} since A generation previously returned by this object.
   * @returns {{generation: number, namespaces: NamespaceState[]}}
   */
  changesSince(since) {
    const rows = this.sql
      .exec(
        `SELECT n.tenant, n.namespace, n.revision, n.seq, n.routes, n.plugins, e.egress
         FROM namespaces n LEFT JOIN namespace_egress e ON e.key = n.key
         WHERE n.seq > ? ORDER BY n.seq`,
        since,
      )
      .toArray();
    return {
      generation: this.generation(),
      namespaces: rows.map((row) => ({
        tenant: String(row.tenant),
        namespace: String(row.namespace),
        revision: Number(row.revision),
        seq: Number(row.seq),
        routes: JSON.parse(String(row.routes)),
        plugins: JSON.parse(String(row.plugins)),
        egress: row.egress ? JSON.parse(String(row.egress)) : { allow: [], methods: null },
      })),
    };
  }

  /**
   * The held revision (and epoch, when pushed with one) of every namespace.
   * @returns {{generation: number, namespaces: Record<string, number>, epochs: Record<string, string>}}
   */
  revisions() {
    /** @type {Record<string, number>} */
    const namespaces = {};
    /** @type {Record<string, string>} */
    const epochs = {};
    for (const row of this.sql.exec(`SELECT key, revision, epoch FROM namespaces ORDER BY key`)) {
      namespaces[String(row.key)] = Number(row.revision);
      if (row.epoch !== null) epochs[String(row.key)] = String(row.epoch);
    }
    return { generation: this.generation(), namespaces, epochs };
  }

  /**
   * Marks a plugin version quarantined in the held namespace state (src/quarantine.js).
   * @param {string} tenant @param {string} namespace @param {string} plugin
   * @param {string} version 64-hex hash. @param {string} reason
   */
  quarantine(tenant, namespace, plugin, version, reason) {
    return quarantineVersion(this, { tenant, namespace, plugin, version, reason });
  }

  /**
   * A version's code, or null if it is not stored.
   * @param {string} hash
   * @returns {Bundle | null}
   */
  getBundle(hash) {
    const rows = this.sql.exec(`SELECT body FROM bundles WHERE hash = ?`, hash).toArray();
    if (!rows.length || !rows[0].body) return null;
    return JSON.parse(String(rows[0].body));
  }
}

/**
 * The stub of the single Registry object.
 * @param {DurableObjectNamespace} namespace The `REGISTRY` binding.
 */
export function registryStub(namespace) {
  // In a gateway pool the object lives in the state process (src/pool.js).
  return durableStub(namespace, REGISTRY_NAME, "Registry");
}
