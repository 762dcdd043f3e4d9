import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  CASYNC_BLOB_FLAGS_SHA256,
  CASYNC_BLOB_FLAGS_SHA512_256,
  CA_FORMAT_INDEX,
  CA_FORMAT_SHA512_256,
  CA_FORMAT_TABLE,
  CA_FORMAT_TABLE_TAIL_MARKER,
  caibxBlobLength,
  caibxByteLength,
  chunkDigestAlgorithm,
  decodeCaibx,
  encodeCaibx,
  type CaibxIndex,
} from '../../../src/storage/caibx.ts';
import { isNarwhalError } from '../../../src/errors.ts';

function id(n: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(String(n)).digest());
}

function sample(n = 3): CaibxIndex {
  const chunks = [];
  let end = 0;
  for (let i = 0; i < n; i++) {
    end += 16384 + i * 1000;
    chunks.push({ end, id: id(i) });
  }
  return {
    featureFlags: CASYNC_BLOB_FLAGS_SHA256,
    chunkSizeMin: 16384,
    chunkSizeAvg: 65536,
    chunkSizeMax: 262144,
    chunks,
  };
}

function u64(bytes: Uint8Array, at: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(at, true);
}

function withU64(bytes: Uint8Array, at: number, value: bigint): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setBigUint64(at, value, true);
  return copy;
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => decodeCaibx(bytes),
    (e) => isNarwhalError(e, 'bad-index') && pattern.test(e.message),
  );
}

test('layout matches the casync format byte for byte', () => {
  const index = sample(2);
  const bytes = encodeCaibx(index);
  assert.equal(bytes.length, 104 + 40 * 2);
  assert.equal(bytes.length, caibxByteLength(2));
  assert.equal(u64(bytes, 0), 48n);
  assert.equal(u64(bytes, 8), CA_FORMAT_INDEX);
  assert.equal(u64(bytes, 16), 0x9000000000000000n);
  assert.equal(u64(bytes, 24), 16384n);
  assert.equal(u64(bytes, 32), 65536n);
  assert.equal(u64(bytes, 40), 262144n);
  assert.equal(u64(bytes, 48), 0xffffffffffffffffn);
  assert.equal(u64(bytes, 56), CA_FORMAT_TABLE);
  assert.equal(u64(bytes, 64), 16384n);
  assert.deepEqual(bytes.subarray(72, 104), index.chunks[0].id);
  assert.equal(u64(bytes, 104), 16384n + 17384n);
  assert.deepEqual(bytes.subarray(112, 144), index.chunks[1].id);
  assert.equal(u64(bytes, 144), 0n);
  assert.equal(u64(bytes, 152), 0n);
  assert.equal(u64(bytes, 160), 48n);
  assert.equal(u64(bytes, 168), BigInt(16 + 40 * 2 + 40));
  assert.equal(u64(bytes, 176), CA_FORMAT_TABLE_TAIL_MARKER);
});

test('round trip preserves every field, including empty indexes and odd flags', () => {
  for (const index of [
    sample(0),
    sample(1),
    sample(50),
    { ...sample(4), featureFlags: CASYNC_BLOB_FLAGS_SHA512_256 },
    { ...sample(2), featureFlags: 0xffffffffffffffffn },
  ]) {
    const decoded = decodeCaibx(encodeCaibx(index));
    assert.deepEqual(decoded, index);
  }
});

test('decode works on a view into a larger buffer and copies the ids', () => {
  const bytes = encodeCaibx(sample(3));
  const big = new Uint8Array(bytes.length + 20);
  big.set(bytes, 7);
  const view = big.subarray(7, 7 + bytes.length);
  const decoded = decodeCaibx(view);
  assert.deepEqual(decoded, sample(3));
  big.fill(0);
  assert.deepEqual(decoded.chunks[2].id, id(2));
});

test('flag helpers', () => {
  assert.equal(CASYNC_BLOB_FLAGS_SHA256, 0x9000000000000000n);
  assert.equal(CASYNC_BLOB_FLAGS_SHA512_256, 0xb000000000000000n);
  assert.equal(CA_FORMAT_SHA512_256, 0x2000000000000000n);
  assert.equal(chunkDigestAlgorithm(CASYNC_BLOB_FLAGS_SHA256), 'sha256');
  assert.equal(chunkDigestAlgorithm(CASYNC_BLOB_FLAGS_SHA512_256), 'sha512-256');
  assert.equal(caibxBlobLength(sample(0)), 0);
  assert.equal(caibxBlobLength(sample(3)), 16384 + 17384 + 18384);
});

test('rejects wrong total lengths', () => {
  const bytes = encodeCaibx(sample(2));
  rejects(bytes.subarray(0, 103), /length/);
  rejects(new Uint8Array(0), /length/);
  rejects(bytes.subarray(0, bytes.length - 1), /length/);
  const longer = new Uint8Array(bytes.length + 8);
  longer.set(bytes);
  rejects(longer, /length/);
});

test('rejects a bad index header', () => {
  const bytes = encodeCaibx(sample(2));
  rejects(withU64(bytes, 0, 49n), /header size/);
  rejects(withU64(bytes, 8, CA_FORMAT_TABLE), /header type/);
});

test('rejects inconsistent chunk size parameters', () => {
  const bytes = encodeCaibx(sample(2));
  rejects(withU64(bytes, 24, 0n), /chunk sizes/); // min 0
  rejects(withU64(bytes, 24, 70000n), /chunk sizes/); // min > avg
  rejects(withU64(bytes, 32, 300000n), /chunk sizes/); // avg > max
  rejects(withU64(bytes, 40, 128n * 1024n * 1024n + 1n), /chunk sizes/); // max above casync's limit
  rejects(withU64(bytes, 40, 1n << 63n), /chunk sizes/);
});

test('rejects a bad table header', () => {
  const bytes = encodeCaibx(sample(2));
  rejects(withU64(bytes, 48, 56n), /table header size/);
  rejects(withU64(bytes, 56, CA_FORMAT_INDEX), /table marker/);
});

test('rejects offsets that do not strictly increase or exceed the range', () => {
  const bytes = encodeCaibx(sample(3));
  rejects(withU64(bytes, 64, 0n), /chunk 0 offset does not increase/); // empty first chunk
  rejects(withU64(bytes, 104, 16384n), /chunk 1 offset does not increase/); // equal to previous
  rejects(withU64(bytes, 104, 100n), /chunk 1 offset does not increase/); // decreasing
  rejects(withU64(bytes, 144, 1n << 60n), /chunk 2 offset is out of range/);
  rejects(withU64(bytes, 144, 0xffffffffffffffffn), /chunk 2 offset is out of range/);
});

test('rejects a chunk larger than the maximum chunk size', () => {
  const bytes = encodeCaibx(sample(3));
  rejects(withU64(bytes, 64, 262145n), /chunk 0 is larger/);
  const exactlyMax = {
    ...sample(0),
    chunks: [
      { end: 262144, id: id(0) },
      { end: 262145, id: id(1) },
    ],
  };
  assert.deepEqual(decodeCaibx(encodeCaibx(exactlyMax)), exactlyMax);
  rejects(withU64(bytes, 144, 16384n + 17384n + 262145n), /chunk 2 is larger/);
});

test('rejects a damaged tail', () => {
  const bytes = encodeCaibx(sample(2));
  const tail = bytes.length - 40;
  rejects(withU64(bytes, tail, 1n), /tail/);
  rejects(withU64(bytes, tail + 8, 1n), /tail/);
  rejects(withU64(bytes, tail + 16, 64n), /table offset/);
  rejects(withU64(bytes, tail + 24, BigInt(16 + 40 * 3 + 40)), /table size/);
  rejects(withU64(bytes, tail + 32, CA_FORMAT_TABLE), /tail marker/);
});

test('a truncated index with a plausible tail position is rejected', () => {
  // Dropping one whole item keeps the length valid but the tail's table size no longer matches.
  const bytes = encodeCaibx(sample(3));
  const cut = new Uint8Array(bytes.length - 40);
  cut.set(bytes.subarray(0, 64 + 80));
  cut.set(bytes.subarray(64 + 120), 64 + 80);
  rejects(cut, /table size/);
});

test('encode refuses what decode would reject', () => {
  const bad = (index: CaibxIndex, pattern: RegExp): void => {
    assert.throws(
      () => encodeCaibx(index),
      (e) => isNarwhalError(e, 'bad-index') && pattern.test(e.message),
    );
  };
  const base = sample(3);
  bad({ ...base, chunks: [base.chunks[1], base.chunks[0]] }, /does not increase/);
  bad({ ...base, chunks: [{ end: 0, id: id(0) }] }, /does not increase/);
  bad({ ...base, chunks: [{ end: 300000, id: id(0) }] }, /larger than the maximum/);
  bad({ ...base, chunks: [{ end: 10, id: new Uint8Array(31) }] }, /ID is not 32 bytes/);
  bad({ ...base, chunks: [{ end: 1.5, id: id(0) }] }, /out of range/);
  bad({ ...base, chunkSizeMin: 0 }, /chunk sizes/);
  bad({ ...base, chunkSizeAvg: 1e6 }, /chunk sizes/);
  bad({ ...base, chunkSizeMax: 1.5 }, /not integers/);
  bad({ ...base, featureFlags: -1n }, /feature flags/);
  bad({ ...base, featureFlags: 1n << 64n }, /feature flags/);
});
