import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUZHASH_TABLE } from '../../../src/chunking/buzhash-table.ts';
import {
  Chunker,
  DEFAULT_CHUNKER_PARAMS,
  chunkerDiscriminator,
  type ChunkerParams,
} from '../../../src/chunking/chunker.ts';
import { chunkStream } from '../../../src/chunking/chunk-stream.ts';
import { isNarwhalError } from '../../../src/errors.ts';

/** Deterministic xorshift32 bytes, so failures reproduce. */
function pseudoRandom(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Random bytes interleaved with long zero runs and a repeated text pattern (forces max cuts). */
function mixedData(length: number, seed: number): Uint8Array {
  const out = pseudoRandom(length, seed);
  const text = new TextEncoder().encode('lorem ipsum dolor sit amet, ');
  for (let region = 0; region * 10000 < length; region++) {
    const start = region * 10000;
    const end = Math.min(length, start + 4000);
    if (region % 3 === 0) out.fill(0, start, end);
    else if (region % 3 === 1) for (let i = start; i < end; i++) out[i] = text[i % text.length];
  }
  return out;
}

function rol32(v: number, r: number): number {
  r &= 31;
  return r === 0 ? v >>> 0 : ((v << r) | (v >>> (32 - r))) >>> 0;
}

/**
 * Byte-by-byte port of casync's ca_chunker_scan (hashes every byte from the start of each chunk,
 * no skipping), used as an in-process oracle. Returns the end offset of every chunk.
 */
function referenceCuts(data: Uint8Array, params: ChunkerParams): number[] {
  const d = chunkerDiscriminator(params);
  const cuts: number[] = [];
  const win = new Uint8Array(48);
  let h = 0;
  let windowSize = 0;
  let chunkSize = 0;
  const shallBreak = (v: number): boolean =>
    chunkSize >= params.max ? true : chunkSize < params.min ? false : v % d === d - 1;
  for (let p = 0; p < data.length; p++) {
    const b = data[p];
    if (windowSize < 48) {
      win[windowSize++] = b;
      chunkSize++;
      if (windowSize === 48) {
        h = 0;
        for (let i = 0; i < 48; i++) h = (h ^ rol32(BUZHASH_TABLE[win[i]], 47 - i)) >>> 0;
        if (shallBreak(h)) {
          cuts.push(p + 1);
          h = 0;
          windowSize = 0;
          chunkSize = 0;
        }
      }
      continue;
    }
    const idx = chunkSize % 48;
    h = (rol32(h, 1) ^ rol32(BUZHASH_TABLE[win[idx]], 48) ^ BUZHASH_TABLE[b]) >>> 0;
    chunkSize++;
    if (shallBreak(h)) {
      cuts.push(p + 1);
      h = 0;
      windowSize = 0;
      chunkSize = 0;
      continue;
    }
    win[idx] = b;
  }
  if (chunkSize > 0) cuts.push(data.length);
  return cuts;
}

/** Feeds `data` to a Chunker in pieces of the given sizes (cycled); returns chunk end offsets. */
function cutsInPieces(data: Uint8Array, params: ChunkerParams, pieces: number[]): number[] {
  const chunker = new Chunker(params);
  const cuts: number[] = [];
  let off = 0;
  let k = 0;
  while (off < data.length) {
    const end = Math.min(data.length, off + pieces[k++ % pieces.length]);
    let pos = off;
    for (;;) {
      const cut = chunker.next(data, pos, end);
      if (cut < 0) break;
      assert.ok(cut > pos && cut <= end, `cut ${cut} outside (${pos}, ${end}]`);
      cuts.push(cut);
      pos = cut;
    }
    off = end;
  }
  if (chunker.pending > 0) cuts.push(data.length);
  return cuts;
}

/** Feeds each piece as its own buffer (copied), so the window must straddle distinct arrays. */
function cutsInSeparateBuffers(data: Uint8Array, params: ChunkerParams, pieces: number[]): number[] {
  const chunker = new Chunker(params);
  const cuts: number[] = [];
  let off = 0;
  let k = 0;
  let consumed = 0;
  while (off < data.length) {
    const end = Math.min(data.length, off + pieces[k++ % pieces.length]);
    const buf = data.slice(off, end);
    let pos = 0;
    for (;;) {
      const cut = chunker.next(buf, pos, buf.length);
      if (cut < 0) break;
      cuts.push(consumed + cut);
      pos = cut;
    }
    consumed += buf.length;
    off = end;
  }
  if (chunker.pending > 0) cuts.push(data.length);
  return cuts;
}

const SMALL: ChunkerParams = { min: 64, avg: 256, max: 1024 }; // discriminator 192 (even)
const TIGHT: ChunkerParams = { min: 1000, avg: 4096, max: 4100 }; // many forced max cuts
const POW2: ChunkerParams = { min: 64, avg: 64, max: 4096 }; // discriminator clamped to 64
const FIXED: ChunkerParams = { min: 100, avg: 100, max: 100 };

test('buzhash table has 256 distinct u32 entries and starts/ends as in casync', () => {
  assert.equal(BUZHASH_TABLE.length, 256);
  assert.equal(new Set(BUZHASH_TABLE).size, 256);
  assert.equal(BUZHASH_TABLE[0], 0x458be752);
  assert.equal(BUZHASH_TABLE[255], 0xd95ddf11);
});

test('discriminator follows casync and is clamped to [min, max]', () => {
  assert.equal(chunkerDiscriminator(DEFAULT_CHUNKER_PARAMS), 49535);
  assert.equal(chunkerDiscriminator(SMALL), 192);
  assert.equal(chunkerDiscriminator(POW2), 64);
  assert.equal(chunkerDiscriminator({ min: 1000, avg: 1000, max: 1000 }), 1000);
  assert.equal(
    chunkerDiscriminator({ min: 48, avg: 100000, max: 100000 }),
    Math.trunc(100000 / (-1.42888852e-7 * 100000 + 1.33237515)),
  );
});

test('invalid parameters are rejected', () => {
  for (const p of [
    { min: 47, avg: 256, max: 1024 },
    { min: 300, avg: 256, max: 1024 },
    { min: 64, avg: 2048, max: 1024 },
    { min: 64, avg: 256, max: 128 * 1024 * 1024 + 1 },
    { min: 64.5, avg: 256, max: 1024 },
    { min: Number.NaN, avg: 256, max: 1024 },
  ]) {
    assert.throws(
      () => new Chunker(p),
      (e) => isNarwhalError(e, 'internal'),
      JSON.stringify(p),
    );
  }
});

test('next() rejects an out-of-bounds range', () => {
  const c = new Chunker(SMALL);
  const data = new Uint8Array(10);
  assert.throws(
    () => c.next(data, 5, 4),
    (e) => isNarwhalError(e),
  );
  assert.throws(
    () => c.next(data, 0, 11),
    (e) => isNarwhalError(e),
  );
  assert.throws(
    () => c.next(data, -1, 3),
    (e) => isNarwhalError(e),
  );
});

for (const [name, params] of Object.entries({ SMALL, TIGHT, POW2, FIXED, DEFAULT: DEFAULT_CHUNKER_PARAMS })) {
  test(`cut points equal the byte-by-byte casync port (${name})`, () => {
    const size = params === DEFAULT_CHUNKER_PARAMS ? 6_000_000 : 300_000;
    for (const data of [pseudoRandom(size, 7), mixedData(size, 11)]) {
      const expected = referenceCuts(data, params);
      assert.ok(expected.length > 3, 'input too small to be meaningful');
      assert.deepEqual(cutsInPieces(data, params, [data.length]), expected);
    }
  });

  test(`arbitrary splits give the same cut points as one buffer (${name})`, () => {
    const data = mixedData(params === DEFAULT_CHUNKER_PARAMS ? 3_000_000 : 200_000, 3);
    const whole = cutsInPieces(data, params, [data.length]);
    const splits = [[1], [47, 1, 48, 0, 49], [0, 7, 0, 3], [13, 4096, 1, 100000], [65536], pseudoRandomSizes(200, 5)];
    for (const pieces of splits) {
      assert.deepEqual(cutsInPieces(data, params, pieces), whole, `pieces ${pieces.slice(0, 6).join(',')}`);
      assert.deepEqual(
        cutsInSeparateBuffers(
          data,
          params,
          pieces.filter((s) => s > 0),
        ),
        whole,
      );
    }
  });
}

function pseudoRandomSizes(count: number, seed: number): number[] {
  const bytes = pseudoRandom(count * 2, seed);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(bytes[2 * i] * 256 + bytes[2 * i + 1]);
  return out;
}

test('chunk sizes stay within [min, max] except a shorter last chunk', () => {
  for (const params of [SMALL, TIGHT, POW2]) {
    const data = mixedData(500_000 + 17, 5);
    const cuts = cutsInPieces(data, params, [4093]);
    let prev = 0;
    let sawMax = false;
    for (let i = 0; i < cuts.length; i++) {
      const size = cuts[i] - prev;
      assert.ok(size <= params.max, `chunk ${i} of ${size} > max`);
      if (i < cuts.length - 1) assert.ok(size >= params.min, `chunk ${i} of ${size} < min`);
      if (size === params.max) sawMax = true;
      prev = cuts[i];
    }
    assert.equal(prev, data.length);
    assert.ok(sawMax, 'expected at least one forced cut at max');
  }
});

test('a fixed-size configuration cuts every min bytes', () => {
  const data = pseudoRandom(1050, 9);
  assert.deepEqual(cutsInPieces(data, FIXED, [33]), [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1050]);
});

test('the cut index is relative to data, not to start', () => {
  const data = pseudoRandom(50_000, 21);
  const expected = referenceCuts(data, SMALL)[0];
  const padded = new Uint8Array(data.length + 1000);
  padded.set(data, 1000);
  assert.equal(new Chunker(SMALL).next(padded, 1000, padded.length), expected + 1000);
});

test('a cut at exactly min is possible and no cut happens before min', () => {
  // Find data whose first chunk ends exactly at min with the port, then check the Chunker agrees.
  for (let seed = 1; seed < 5000; seed++) {
    const data = pseudoRandom(2000, seed);
    const cuts = referenceCuts(data, SMALL);
    if (cuts[0] !== SMALL.min) continue;
    assert.equal(new Chunker(SMALL).next(data, 0, data.length), SMALL.min);
    assert.equal(new Chunker(SMALL).next(data, 0, SMALL.min - 1), -1);
    return;
  }
  assert.fail('no seed produced a cut at min');
});

async function collect(source: AsyncIterable<Uint8Array>, params?: ChunkerParams): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of chunkStream(source, params)) out.push(c);
  return out;
}

async function* inPieces(data: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let off = 0;
  let k = 0;
  while (off < data.length) {
    const n = sizes[k++ % sizes.length];
    yield data.slice(off, off + n);
    off += n;
  }
}

test('chunkStream yields the chunks at the reference cut points, last one shorter than min', async () => {
  const data = mixedData(300_001, 13);
  const expected = referenceCuts(data, SMALL);
  for (const sizes of [[data.length], [1, 2, 3, 500], [65536], [SMALL.max + 1]]) {
    const chunks = await collect(inPieces(data, sizes), SMALL);
    assert.deepEqual(
      chunks.map((_c, i) => chunks.slice(0, i + 1).reduce((s, x) => s + x.length, 0)),
      expected,
    );
    let off = 0;
    for (const c of chunks) {
      assert.deepEqual(c, data.subarray(off, off + c.length));
      off += c.length;
    }
  }
  // Cut points depend only on the bytes so far: truncating 10 bytes after a cut leaves a 10-byte tail.
  const sizes = expected.slice(0, 6).map((e, i) => e - (i ? expected[i - 1] : 0));
  for (const extra of [1, 10]) {
    const truncated = data.subarray(0, expected[5] + extra);
    const tail = await collect(inPieces(truncated, [999]), SMALL);
    assert.deepEqual(
      tail.map((c) => c.length),
      [...sizes, extra],
    );
  }
});

test('chunkStream: empty input yields nothing, input shorter than min yields one chunk', async () => {
  assert.deepEqual(await collect(inPieces(new Uint8Array(0), [1])), []);
  const tiny = pseudoRandom(1000, 2);
  const chunks = await collect(inPieces(tiny, [10]));
  assert.equal(chunks.length, 1);
  assert.deepEqual(chunks[0], tiny);
});

test('chunkStream output does not alias source buffers that get reused', async () => {
  const data = mixedData(100_000, 17);
  const expected = referenceCuts(data, SMALL);
  const shared = new Uint8Array(777);
  async function* reusing(): AsyncGenerator<Uint8Array> {
    for (let off = 0; off < data.length; off += shared.length) {
      const n = Math.min(shared.length, data.length - off);
      shared.set(data.subarray(off, off + n));
      yield shared.subarray(0, n);
    }
    shared.fill(0xaa);
  }
  const chunks: Uint8Array[] = [];
  for await (const c of chunkStream(reusing(), SMALL)) chunks.push(c);
  let off = 0;
  const ends: number[] = [];
  for (const c of chunks) {
    assert.deepEqual(c, data.subarray(off, off + c.length));
    off += c.length;
    ends.push(off);
  }
  assert.deepEqual(ends, expected);
});
