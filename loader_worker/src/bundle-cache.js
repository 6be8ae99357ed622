/**
 * Recently pushed or loaded bundles, kept in the gateway isolate's memory so that the first
 * request to a new version starts its isolate without a round trip to the Registry Durable
 * Object (loader.js, `loadBundle`). A miss (the push landed in another process, the entry was
 * evicted, the isolate restarted) falls back to the Registry, which stays the source of truth.
 *
 * Bounded by an approximate byte count (the length of the module values), least recently used
 * out first. Bundles are content-addressed (the key is the version hash), so an entry is never
 * stale. No imports: unit-tested under Node (test/bundle-cache.test.js).
 */

/** Default bound of the cache, in bytes of module text. */
export const BUNDLE_CACHE_BYTES = 16 * 1024 * 1024;

/**
 * A bounded LRU of bundles by hash. A Map keeps insertion order: a hit moves the entry to the end,
 * eviction takes from the front.
 */
export class BundleCache {
  /** @param {number} [maxBytes] */
  constructor(maxBytes = BUNDLE_CACHE_BYTES) {
    this.maxBytes = maxBytes;
    this.bytes = 0;
    /** @type {Map<string, {bundle: any, bytes: number}>} */
    this.entries = new Map();
  }

  /**
   * Keeps a bundle; one larger than a quarter of the bound is not kept (it would flush the rest).
   * @param {string} hash
   * @param {any} bundle A stored bundle ({mainModule, modules, ...}).
   */
  put(hash, bundle) {
    if (!bundle || typeof bundle !== "object" || !bundle.modules || typeof bundle.modules !== "object") return;
    const bytes = bundleBytes(bundle);
    if (bytes > this.maxBytes / 4) return;
    this.delete(hash);
    this.entries.set(hash, { bundle, bytes });
    this.bytes += bytes;
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
  }

  /**
   * @param {string} hash
   * @returns {any | undefined} the bundle, now the most recently used, or undefined.
   */
  get(hash) {
    const held = this.entries.get(hash);
    if (!held) return undefined;
    this.entries.delete(hash);
    this.entries.set(hash, held);
    return held.bundle;
  }

  /** @param {string} hash */
  delete(hash) {
    const held = this.entries.get(hash);
    if (!held) return;
    this.entries.delete(hash);
    this.bytes -= held.bytes;
  }

  /** @returns {{bundles: number, bytes: number}} */
  status() {
    return { bundles: this.entries.size, bytes: this.bytes };
  }
}

/** @param {any} bundle @returns {number} the length of its module values (64 for a non-string). */
export function bundleBytes(bundle) {
  let bytes = 0;
  for (const value of Object.values(bundle.modules)) {
    if (!value || typeof value !== "object") continue;
    for (const part of Object.values(value)) bytes += typeof part === "string" ? part.length : 64;
  }
  return bytes;
}

/** The gateway isolate's cache. */
const cache = new BundleCache();

/**
 * Keeps a bundle for the next cold load of its version.
 * @param {string} hash
 * @param {any} bundle
 */
export function rememberBundle(hash, bundle) {
  cache.put(hash, bundle);
}

/**
 * @param {string} hash
 * @returns {any | undefined} a bundle held in memory.
 */
export function rememberedBundle(hash) {
  return cache.get(hash);
}

/** @returns {{bundles: number, bytes: number}} what the isolate's cache holds. */
export function bundleCacheStatus() {
  return cache.status();
}
