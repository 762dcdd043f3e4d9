import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { ZstdFrameEncoder, encoderPerLevel, zstdCompressBound } from '../../../src/storage/zstd-frame-encoder.ts';

/** Compressible but not trivial: hash output (incompressible) interleaved with repeated text. */
function sample(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0, n = seed; at < size; n++) {
    const piece = n % 3 === 0 ? createHash('sha256').update(String(n)).digest() : Buffer.from(`line ${n % 50} of a text that repeats\n`);
    out.set(piece.subarray(0, size - at), at);
    at += piece.length;
  }
  return out;
}

test('each frame decodes to its input and equals what zstdCompressSync makes, frame after frame', () => {
  for (const level of [1, 3, 19]) {
    const encoder = new ZstdFrameEncoder(level);
    for (const [i, size] of [0, 1, 48, 4096, 65536, 200_000, 262_144, 100].entries()) {
      const data = sample(size, i * 7 + level);
      const frame = new Uint8Array(encoder.encode(data));
      assert.deepEqual(new Uint8Array(zstdDecompressSync(frame)), data, `level ${level}, ${size} bytes`);
      assert.deepEqual(frame, new Uint8Array(zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: level } })), `level ${level}, ${size} bytes`);
    }
    encoder.close();
  }
});

test('an input larger than the first output buffer (a big chunk, incompressible) still makes one whole frame', () => {
  const encoder = new ZstdFrameEncoder(1);
  const data = new Uint8Array(1024 * 1024);
  for (let at = 0; at < data.length; at += 32) data.set(createHash('sha256').update(String(at)).digest(), at);
  const frame = encoder.encode(data);
  assert.ok(frame.length > data.length && frame.length <= zstdCompressBound(data.length));
  assert.deepEqual(new Uint8Array(zstdDecompressSync(frame)), data);
  // and the encoder goes on with small inputs after it
  const small = sample(1000, 1);
  assert.deepEqual(new Uint8Array(zstdDecompressSync(encoder.encode(small))), small);
});

test('the returned frame is a view the next call overwrites, so callers copy what they keep', () => {
  const encoder = new ZstdFrameEncoder(1);
  const first = encoder.encode(sample(5000, 1));
  const kept = new Uint8Array(first);
  encoder.encode(sample(5000, 2));
  assert.notDeepEqual(new Uint8Array(first), kept);
  assert.deepEqual(new Uint8Array(zstdDecompressSync(kept)), sample(5000, 1));
});

test('encoderPerLevel keeps one encoder per level', () => {
  const encoderFor = encoderPerLevel();
  assert.equal(encoderFor(1), encoderFor(1));
  assert.notEqual(encoderFor(1), encoderFor(19));
  assert.equal(encoderFor(19).level, 19);
});
