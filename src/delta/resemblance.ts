/**
 * Resemblance sketches of chunks: a few super-features such that two chunks sharing most of their
 * content share at least one super-feature with high probability, and unrelated chunks share none.
 * Found bases are then index lookups (super-feature -> chunks), never a scan.
 *
 * Method (one-permutation min-hash over gear-hash shingles, grouped as in Finesse/N-transform):
 * - one pass of a 32-bit gear hash, h = (h << 1) + GEAR[byte]: every value depends on the last 32
 *   bytes only (older bytes have been shifted out), so it names a 32-byte shingle;
 * - each position is put in one of FEATURES classes by the hash's top 16 bits (multiply-shift
 *   range reduction, so which class depends on the whole window and not on the position in the
 *   chunk), and the feature of a class is the largest hash seen in it. An edit touches only the
 *   shingles that overlap it, so it changes a feature only if it removes or beats that class's
 *   maximum: unlike fixed sub-regions (Finesse), insertions that shift content change nothing else;
 * - super-feature j hashes features j, j + S, j + 2S, ... (FEATURES / S of them): a super-feature
 *   matches only if all its features do, which makes chance matches between unrelated chunks
 *   negligible, while S of them keep a good chance that a similar chunk matches at least one.
 *
 * With J the share of common shingles, a feature matches with probability about J, a
 * super-feature about J^(FEATURES/S). Defaults: 12 features, 4 super-features of 3.
 */

export const SKETCH_FEATURES = 12;
export const SKETCH_SUPER_FEATURES = 4;
const PER_SUPER = SKETCH_FEATURES / SKETCH_SUPER_FEATURES;

/** 256 pseudo-random 32-bit values (splitmix32 from a fixed seed): the gear table. */
export const GEAR: Int32Array = (() => {
  const t = new Int32Array(256);
  let s = 0x5eed1e55;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    t[i] = z ^ (z >>> 16);
  }
  return t;
})();

/** murmur3's 32-bit finaliser. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Computes the features of `data` into `features` (length SKETCH_FEATURES, overwritten): per
 * class, the largest gear hash (signed 32-bit order, stored unsigned) among positions of that
 * class, 0 if none.
 * The first 31 positions, whose hash does not yet cover a full 32-byte window, are skipped.
 */
export function chunkFeatures(data: Uint8Array, features: Uint32Array): void {
  // Maxima in signed order (any fixed order is as good a min-hash, and int32 compares are fastest).
  const max = new Int32Array(SKETCH_FEATURES).fill(-0x80000000);
  const n = data.length;
  const gear = GEAR;
  let h = 0;
  const warm = Math.min(n, 31);
  for (let i = 0; i < warm; i++) h = ((h << 1) + gear[data[i]]) | 0;
  for (let i = warm; i < n; i++) {
    h = ((h << 1) + gear[data[i]]) | 0;
    const c = Math.imul(h >>> 16, SKETCH_FEATURES) >>> 16;
    if (h > max[c]) max[c] = h;
  }
  for (let c = 0; c < SKETCH_FEATURES; c++) features[c] = n > 31 && max[c] !== -0x80000000 ? max[c] >>> 0 : 0;
}

/**
 * The chunk's sketch: SKETCH_SUPER_FEATURES 32-bit super-features. Writes into `out` when given
 * (no allocation per chunk in a loop), else returns a new array. Super-feature j is a hash of
 * features j, j + S, j + 2S and of j itself, so equal features in different groups give different
 * super-features. A chunk too short to have features gets all-zero super-features' hashes, which
 * equal those of other such chunks (they are tiny; callers may ignore them).
 */
export function chunkSketch(
  data: Uint8Array,
  out: Uint32Array = new Uint32Array(SKETCH_SUPER_FEATURES),
  scratch: Uint32Array = new Uint32Array(SKETCH_FEATURES),
): Uint32Array {
  chunkFeatures(data, scratch);
  for (let j = 0; j < SKETCH_SUPER_FEATURES; j++) {
    let acc = mix32(0x51ed270b + j);
    for (let k = 0; k < PER_SUPER; k++)
      acc = mix32((acc ^ scratch[j + k * SKETCH_SUPER_FEATURES]) + Math.imul(k + 1, 0x9e3779b9));
    out[j] = acc;
  }
  return out;
}

/** How many super-features two sketches have in common at the same index. */
export function matchingSuperFeatures(a: Uint32Array, b: Uint32Array): number {
  let n = 0;
  for (let j = 0; j < SKETCH_SUPER_FEATURES; j++) if (a[j] === b[j]) n++;
  return n;
}
