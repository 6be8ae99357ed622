/**
 * Deterministic, GrowthBook-compatible bucketing (docs/experiments.md, "Bucketing").
 *
 * The hash, the bucket ranges and the namespace (exclusion range) check follow GrowthBook's
 * JavaScript SDK, growthbook/growthbook packages/sdk-js/src/util.ts: `hashFnv32a`, `hash`
 * (version 2 for variant assignment, version 1 for namespaces, as `inNamespace` does),
 * `getBucketRanges` and `chooseVariation`. FNV-1a runs over UTF-16 code units (`charCodeAt`),
 * so non-ASCII keys hash exactly as in GrowthBook. The Python twin is
 * platform/plugyard/experiments/bucketing.py; both pass tests/vectors/bucketing.json.
 */

/** Seed of the per-namespace holdout check; ":" cannot occur in an exclusion-group slug. */
export const HOLDOUT_GROUP = "holdout:";

/**
 * FNV-1a, 32 bit, over UTF-16 code units (GrowthBook's `hashFnv32a`).
 * @param {string} str
 * @returns {number} unsigned 32-bit integer
 */
export function fnv1a32(str) {
  let hval = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    hval ^= str.charCodeAt(i);
    // hval * 16777619 (the FNV prime) modulo 2^32, written as shifts as GrowthBook does.
    hval += (hval << 1) + (hval << 4) + (hval << 7) + (hval << 8) + (hval << 24);
  }
  return hval >>> 0;
}

/**
 * GrowthBook's `hash(seed, value, version)`: a number in [0, 1).
 * @param {string} seed
 * @param {string} value
 * @param {1 | 2} version 2: fnv(str(fnv(seed + value))) % 10000 / 10000; 1: fnv(value + seed) % 1000 / 1000.
 * @returns {number}
 */
export function hash(seed, value, version) {
  if (version === 2) return (fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000;
  return (fnv1a32(value + seed) % 1000) / 1000;
}

/**
 * GrowthBook's `inNamespace`: is the key's namespace hash inside [start, end)?
 * @param {string} key
 * @param {string} group namespace (exclusion group) id
 * @param {number} start
 * @param {number} end
 */
export function inNamespace(key, group, start, end) {
  const n = hash("__" + group, key, 1);
  return n >= start && n < end;
}

/**
 * GrowthBook's `getBucketRanges`: one [start, end) range per variant, laid out by weight and
 * shrunk by coverage (clamped to [0, 1]); equal weights when the weights are unusable.
 * @param {number} count number of variants
 * @param {number} coverage
 * @param {number[] | null} weights should sum to 1
 * @returns {[number, number][]}
 */
export function bucketRanges(count, coverage, weights) {
  const cover = coverage < 0 ? 0 : coverage > 1 ? 1 : coverage;
  const equal = count <= 0 ? [] : new Array(count).fill(1 / count);
  let w = weights && weights.length === count ? weights : equal;
  let total = 0;
  for (const x of w) total += x;
  if (total < 0.99 || total > 1.01) w = equal;
  let cumulative = 0;
  return w.map((x) => {
    const start = cumulative;
    cumulative += x;
    return /** @type {[number, number]} */ ([start, start + cover * x]);
  });
}

/**
 * GrowthBook's `chooseVariation`: index of the range holding n, or -1.
 * @param {number} n
 * @param {[number, number][]} ranges
 */
export function chooseVariation(n, ranges) {
  for (let i = 0; i < ranges.length; i++) {
    if (n >= ranges[i][0] && n < ranges[i][1]) return i;
  }
  return -1;
}

/**
 * @typedef {Object} BucketConfig
 * @property {string} seed hash seed (the experiment key, or key:phase for later phases)
 * @property {number} coverage share of traffic in the experiment, 0..1
 * @property {number[]} weights one per variant, normalised to sum to 1
 * @property {{group: string, start: number, end: number} | null} [exclusion]
 * @property {number} [holdout] namespace holdout share, 0..1
 */

/**
 * @typedef {{variant: number, reason: "assigned"}
 *   | {variant: null, reason: "no-key" | "holdout" | "excluded" | "coverage"}} Assignment
 */

/**
 * Which variant a key gets. Order: holdout, exclusion range, then coverage and weights.
 * @param {BucketConfig} config
 * @param {string} key
 * @returns {Assignment}
 */
export function assign(config, key) {
  if (!key) return { variant: null, reason: "no-key" };
  const holdout = config.holdout ?? 0;
  if (holdout > 0 && inNamespace(key, HOLDOUT_GROUP, 0, holdout)) return { variant: null, reason: "holdout" };
  const ex = config.exclusion;
  if (ex && !inNamespace(key, ex.group, ex.start, ex.end)) return { variant: null, reason: "excluded" };
  const n = hash(config.seed, key, 2);
  const i = chooseVariation(n, bucketRanges(config.weights.length, config.coverage, config.weights));
  return i < 0 ? { variant: null, reason: "coverage" } : { variant: i, reason: "assigned" };
}
