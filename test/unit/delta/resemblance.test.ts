import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GEAR,
  SKETCH_FEATURES,
  SKETCH_SUPER_FEATURES,
  chunkFeatures,
  chunkSketch,
  matchingSuperFeatures,
} from '../../../src/delta/resemblance.ts';

/** Deterministic xorshift32 bytes, so failures reproduce. */
function pseudoRandom(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 24;
  }
  return out;
}

/** A seeded generator of integers in [0, n). */
function rng(seed: number): (n: number) => number {
  let x = seed | 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const hex = (a: Uint32Array): string[] => Array.from(a, (x) => `0x${x.toString(16).padStart(8, '0')}`);

test('identical chunks give identical sketches, wherever their bytes live', () => {
  const a = pseudoRandom(70_000, 7);
  const holder = new Uint8Array(a.length + 13);
  holder.set(a, 13);
  assert.deepEqual(chunkSketch(a), chunkSketch(holder.subarray(13)));
  assert.deepEqual(chunkSketch(a), chunkSketch(a.slice()));
  assert.equal(matchingSuperFeatures(chunkSketch(a), chunkSketch(a.slice())), SKETCH_SUPER_FEATURES);
});

test("sketch has the documented shape and reuses the caller's arrays", () => {
  const out = new Uint32Array(SKETCH_SUPER_FEATURES);
  const scratch = new Uint32Array(SKETCH_FEATURES);
  const data = pseudoRandom(20_000, 3);
  assert.equal(chunkSketch(data, out, scratch), out);
  assert.deepEqual(out, chunkSketch(data));
  assert.equal(GEAR.length, 256);
});

test('golden values: the sketch is stable across runs and versions', () => {
  const periodic = new Uint8Array(100 * 1024);
  for (let i = 0; i < periodic.length; i++) periodic[i] = (i * 31 + 7) % 251;
  let s = 12345;
  const lcg = new Uint8Array(64 * 1024);
  for (let i = 0; i < lcg.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    lcg[i] = s >>> 24;
  }
  assert.deepEqual(hex(chunkSketch(periodic)), ['0xe9b36c62', '0xaa78c11e', '0xb74f1fbf', '0x9d84ea03']);
  assert.deepEqual(hex(chunkSketch(lcg)), ['0x5612b00a', '0x1299432b', '0x9ddd68c0', '0x390b9596']);
  // Too short for a full 32-byte window: no features, one fixed sketch for all such chunks.
  assert.deepEqual(hex(chunkSketch(new Uint8Array(10))), ['0x71972099', '0x7484d916', '0xa9371297', '0xe698d5d8']);
  assert.deepEqual(chunkSketch(new Uint8Array(0)), chunkSketch(pseudoRandom(31, 1)));
});

test('a chunk with a few bytes changed keeps most super-features', () => {
  const random = rng(42);
  let total = 0;
  const trials = 60;
  for (let t = 0; t < trials; t++) {
    const a = pseudoRandom(16_384 + random(240_000), 1000 + t);
    const b = a.slice();
    for (let e = 0; e < 8; e++) b[random(b.length)] ^= 1 + random(255);
    const m = matchingSuperFeatures(chunkSketch(a), chunkSketch(b));
    assert.ok(m >= 2, `trial ${t}: only ${m} super-features kept after 8 byte edits`);
    total += m;
  }
  assert.ok(total / trials >= 3.5, `mean ${total / trials} super-features kept`);
});

test('insertions and deletions, which shift the rest of the chunk, keep most super-features', () => {
  const random = rng(9);
  let total = 0;
  const trials = 40;
  for (let t = 0; t < trials; t++) {
    const a = pseudoRandom(65_536, 2000 + t);
    const at = random(a.length);
    const inserted = pseudoRandom(1 + random(200), 3000 + t);
    // 100 bytes at `at` replaced by 1-200 others.
    const rest = a.subarray(Math.min(a.length, at + 100));
    const b = new Uint8Array(at + inserted.length + rest.length);
    b.set(a.subarray(0, at));
    b.set(inserted, at);
    b.set(rest, at + inserted.length);
    total += matchingSuperFeatures(chunkSketch(a), chunkSketch(b));
  }
  assert.ok(total / trials >= 3.5, `mean ${total / trials} super-features kept`);
});

test('unrelated chunks share no super-feature (bound on false matches over seeded pairs)', () => {
  const random = rng(77);
  const pairs = 400;
  let features = 0;
  let superFeatures = 0;
  const fa = new Uint32Array(SKETCH_FEATURES);
  const fb = new Uint32Array(SKETCH_FEATURES);
  for (let t = 0; t < pairs; t++) {
    const a = pseudoRandom(16_384 + random(100_000), 5000 + 2 * t);
    const b = pseudoRandom(16_384 + random(100_000), 5001 + 2 * t);
    chunkFeatures(a, fa);
    chunkFeatures(b, fb);
    for (let i = 0; i < SKETCH_FEATURES; i++) if (fa[i] === fb[i]) features++;
    superFeatures += matchingSuperFeatures(chunkSketch(a), chunkSketch(b));
  }
  assert.equal(superFeatures, 0);
  // A single feature is a 32-bit maximum: equal by chance well under once per 1000 comparisons.
  assert.ok(features <= 2, `${features} of ${pairs * SKETCH_FEATURES} features equal by chance`);
});

test('chunks sharing half their content usually share a super-feature', () => {
  let hits = 0;
  const trials = 40;
  for (let t = 0; t < trials; t++) {
    const common = pseudoRandom(48_000, 9000 + t);
    const a = new Uint8Array(64_000);
    const b = new Uint8Array(64_000);
    a.set(common);
    b.set(common);
    a.set(pseudoRandom(16_000, 9100 + t), 48_000);
    b.set(pseudoRandom(16_000, 9200 + t), 48_000);
    if (matchingSuperFeatures(chunkSketch(a), chunkSketch(b)) > 0) hits++;
  }
  // Jaccard 0.6 -> a super-feature of 3 features matches with p ~ 0.22, one of four ~ 0.6.
  assert.ok(hits >= trials / 3, `${hits} of ${trials}`);
});
