/**
 * Route index: maps (host, path) to the most specific route pattern.
 *
 * Lookup cost does not grow with the number of routes: exact hosts live in one Map, wildcard
 * hosts in another keyed by their suffix (`*.acme.test` → `acme.test`), so a lookup is one Map
 * probe for the exact host plus one per label of the request host. Each host then has a small
 * path table (exact paths in a Map, prefixes sorted longest first).
 *
 * Specificity (gateway protocol, "Data plane"): exact host beats wildcard host, a longer
 * wildcard suffix beats a shorter one; then exact path beats prefix, longer prefix beats shorter.
 * Patterns are meant to be globally unique; if two namespaces hold the same pattern, the most
 * recent push (highest `seq`) wins, and the other reappears if the winner drops it.
 */

/**
 * @typedef {Object} RouteTarget
 * @property {string} nsKey `tenant/namespace`.
 * @property {string} plugin
 * @property {string} pattern
 * @property {number} seq Generation of the push that brought this route.
 */

/**
 * @typedef {Object} ParsedPattern
 * @property {boolean} wildcard Host is `*.suffix`.
 * @property {string} host Exact host, or the suffix (without `*.`) for a wildcard.
 * @property {boolean} prefix Path ends in `*`.
 * @property {string} path Exact path, or the prefix (without the `*`).
 */

/**
 * Parses a `host/path` route pattern; returns null if it is not one.
 * @param {string} pattern
 * @returns {ParsedPattern | null}
 */
export function parsePattern(pattern) {
  if (typeof pattern !== "string") return null;
  const slash = pattern.indexOf("/");
  if (slash <= 0) return null;
  let host = pattern.slice(0, slash).toLowerCase();
  let path = pattern.slice(slash);
  const wildcard = host.startsWith("*.");
  if (wildcard) host = host.slice(2);
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(host)) return null;
  const prefix = path.endsWith("*");
  if (prefix) path = path.slice(0, -1);
  if (path.includes("*") || /\s/.test(path)) return null;
  return { wildcard, host, prefix, path };
}

class PathTable {
  constructor() {
    /** @type {Map<string, RouteTarget[]>} exact path → holders */
    this.exact = new Map();
    /** @type {{path: string, holders: RouteTarget[]}[]} prefixes, longest first */
    this.prefixes = [];
  }

  /** @param {string} path @returns {RouteTarget | undefined} */
  match(path) {
    const exact = this.exact.get(path);
    if (exact) return exact[0];
    for (const entry of this.prefixes) {
      if (path.startsWith(entry.path)) return entry.holders[0];
    }
    return undefined;
  }

  /** @param {ParsedPattern} parsed @param {RouteTarget} target */
  add(parsed, target) {
    let holders;
    if (parsed.prefix) {
      let entry = this.prefixes.find((e) => e.path === parsed.path);
      if (!entry) {
        entry = { path: parsed.path, holders: [] };
        this.prefixes.push(entry);
        this.prefixes.sort((a, b) => b.path.length - a.path.length);
      }
      holders = entry.holders;
    } else {
      holders = this.exact.get(parsed.path);
      if (!holders) this.exact.set(parsed.path, (holders = []));
    }
    holders.push(target);
    // Most recent push first.
    holders.sort((a, b) => b.seq - a.seq);
  }

  /**
   * @param {ParsedPattern} parsed @param {RouteTarget} target
   * @returns {boolean} whether the table is now empty
   */
  remove(parsed, target) {
    if (parsed.prefix) {
      const i = this.prefixes.findIndex((e) => e.path === parsed.path);
      if (i >= 0) {
        const holders = this.prefixes[i].holders.filter((t) => t !== target);
        if (holders.length) this.prefixes[i].holders = holders;
        else this.prefixes.splice(i, 1);
      }
    } else {
      const holders = (this.exact.get(parsed.path) ?? []).filter((t) => t !== target);
      if (holders.length) this.exact.set(parsed.path, holders);
      else this.exact.delete(parsed.path);
    }
    return this.exact.size === 0 && this.prefixes.length === 0;
  }
}

/** All routes of all namespaces, indexed for constant-cost lookup. */
export class RouteIndex {
  constructor() {
    /** @type {Map<string, PathTable>} */
    this.exactHosts = new Map();
    /** @type {Map<string, PathTable>} wildcard suffix → table */
    this.wildcardHosts = new Map();
    /** @type {Map<string, {parsed: ParsedPattern, target: RouteTarget}[]>} nsKey → its routes */
    this.byNamespace = new Map();
  }

  /**
   * Replaces one namespace's routes. Invalid patterns are skipped (the push validated them).
   * @param {string} nsKey
   * @param {number} seq
   * @param {{pattern: string, plugin: string}[]} routes
   */
  setNamespaceRoutes(nsKey, seq, routes) {
    for (const { parsed, target } of this.byNamespace.get(nsKey) ?? []) {
      const hosts = parsed.wildcard ? this.wildcardHosts : this.exactHosts;
      const table = hosts.get(parsed.host);
      if (table && table.remove(parsed, target)) hosts.delete(parsed.host);
    }
    const added = [];
    for (const route of routes) {
      const parsed = parsePattern(route.pattern);
      if (!parsed) continue;
      const target = { nsKey, plugin: route.plugin, pattern: route.pattern, seq };
      const hosts = parsed.wildcard ? this.wildcardHosts : this.exactHosts;
      let table = hosts.get(parsed.host);
      if (!table) hosts.set(parsed.host, (table = new PathTable()));
      table.add(parsed, target);
      added.push({ parsed, target });
    }
    if (added.length) this.byNamespace.set(nsKey, added);
    else this.byNamespace.delete(nsKey);
  }

  /**
   * The most specific route for a request.
   * @param {string} host Lower-cased host without port (URL.hostname).
   * @param {string} path URL pathname.
   * @returns {RouteTarget | undefined}
   */
  match(host, path) {
    if (host.endsWith(".")) host = host.slice(0, -1);
    const exact = this.exactHosts.get(host)?.match(path);
    if (exact) return exact;
    if (this.wildcardHosts.size === 0) return undefined;
    // Longest proper suffix first: "a.b.acme.test" → "b.acme.test", "acme.test", "test".
    for (let dot = host.indexOf("."); dot >= 0; dot = host.indexOf(".", dot + 1)) {
      const found = this.wildcardHosts.get(host.slice(dot + 1))?.match(path);
      if (found) return found;
    }
    return undefined;
  }
}
