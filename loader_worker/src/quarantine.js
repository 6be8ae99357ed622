/**
 * Quarantined versions (docs/operations.md, "Quarantine").
 *
 * A plugin entry in the held namespace state may carry `quarantine: {"<version hash>": reason}`;
 * the data plane answers `503 plugin-quarantined` for those versions without loading them.
 * Two writers:
 * - the control plane, in every push (its PostgreSQL record of open quarantines);
 * - the pool supervisor, through `POST /_plugyard/quarantine` right after it killed a process
 *   that a version hung, so the gateway stops routing it even when the control plane is down.
 *   The mark lasts until the next push of that namespace, which carries the control plane's view
 *   (the supervisor reports the quarantine there too, before or right after).
 */
import { json, problem } from "./problems.js";
import { applyPushed } from "./snapshot.js";

const HASH_RE = /^[0-9a-f]{64}$/;

/**
 * Applies a quarantine inside the Registry's transaction: rewrites the namespace's plugin state
 * and bumps its seq so every process's snapshot refresh picks it up.
 * @param {any} registry The Registry object (`this`).
 * @param {{tenant: string, namespace: string, plugin: string, version: string, reason: string}} q
 * @returns {{status: "quarantined", generation: number, state: any} | {status: "unknown-plugin"}}
 */
export function quarantineVersion(registry, q) {
  const key = `${q.tenant}/${q.namespace}`;
  return registry.ctx.storage.transactionSync(() => {
    const rows = registry.sql
      .exec(`SELECT tenant, namespace, revision, routes, plugins FROM namespaces WHERE key = ?`, key)
      .toArray();
    if (!rows.length) return { status: "unknown-plugin" };
    const plugins = JSON.parse(String(rows[0].plugins));
    const entry = plugins[q.plugin];
    if (!entry) return { status: "unknown-plugin" };
    entry.quarantine = { ...(entry.quarantine ?? {}), [q.version]: q.reason };
    const generation = registry.generation() + 1;
    registry.sql.exec(
      `INSERT INTO meta (key, value) VALUES ('generation', ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      generation,
    );
    registry.sql.exec(
      `UPDATE namespaces SET plugins = ?, seq = ? WHERE key = ?`,
      JSON.stringify(plugins),
      generation,
      key,
    );
    const egress = registry.sql.exec(`SELECT egress FROM namespace_egress WHERE key = ?`, key).toArray();
    const state = {
      tenant: String(rows[0].tenant),
      namespace: String(rows[0].namespace),
      revision: Number(rows[0].revision),
      seq: generation,
      routes: JSON.parse(String(rows[0].routes)),
      plugins,
      egress: egress.length ? JSON.parse(String(egress[0].egress)) : { allow: [], methods: null },
    };
    return { status: "quarantined", generation, state };
  });
}

/**
 * `POST /_plugyard/quarantine` (signed): `{tenant, namespace, plugin, version, reason}`.
 * @param {any} registry Registry stub.
 * @param {Uint8Array} body
 * @param {string} requestId
 */
export async function handleQuarantine(registry, body, requestId) {
  let input;
  try {
    input = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return problem(400, "invalid-quarantine", "The body is not JSON.", requestId);
  }
  const fields = ["tenant", "namespace", "plugin", "version", "reason"];
  const bad = fields.find((f) => typeof input?.[f] !== "string" || !input[f] || input[f].length > 500);
  if (bad) return problem(400, "invalid-quarantine", `${bad} must be a non-empty string.`, requestId);
  if (!HASH_RE.test(input.version)) {
    return problem(400, "invalid-quarantine", "version must be 64 hex.", requestId);
  }
  const result = await registry.quarantine(input.tenant, input.namespace, input.plugin, input.version, input.reason);
  if (result.status !== "quarantined") {
    return problem(404, "unknown-plugin", `No plugin ${input.plugin} in ${input.tenant}/${input.namespace}.`, requestId);
  }
  applyPushed(result.state, result.generation);
  return json({ status: "quarantined", version: input.version });
}
