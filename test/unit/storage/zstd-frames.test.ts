import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import {
  ZstdFrameDecoder,
  ZstdFrameEncoder,
  encodeAllWithDictionary,
  encodeWithDictionary,
  encoderPerLevel,
  zstdCompressBound,
} from '../../../src/storage/zstd-frames.ts';

/** Compressible but not trivial: hash output (incompressible) interleaved with repeated text. */
function sample(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0, n = seed; at < size; n++) {
    const piece =
      n % 3 === 0
        ? createHash('sha256').update(String(n)).digest()
        : Buffer.from(`line ${n % 50} of a text that repeats\n`);
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
      assert.deepEqual(
        frame,
        new Uint8Array(zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: level } })),
        `level ${level}, ${size} bytes`,
      );
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

/** Same bytes, whatever the view's class (Buffer or Uint8Array). */
function assertBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.ok(
    Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(expected),
    `${actual.length} bytes, not the ${expected.length} expected`,
  );
}

function frameOf(data: Uint8Array, level = 3): Uint8Array {
  return new Uint8Array(zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: level } }));
}

test("the decoder gives back each frame's bytes, frame after frame, in buffers of their own", () => {
  const decoder = new ZstdFrameDecoder();
  const outputs: Uint8Array[] = [];
  for (const [i, size] of [65536, 0, 1, 262_144, 4096].entries()) {
    const data = sample(size, i);
    const out = decoder.decode(frameOf(data), size);
    assertBytes(out, data);
    assert.equal(out.byteOffset, 0, 'a buffer of its own starts at 0');
    outputs.push(out);
  }
  assert.equal(new Set(outputs.map((o) => o.buffer)).size, outputs.length, 'no two outputs share a buffer');
});

test('the decoder writes into the buffer given when it has room, and not otherwise', () => {
  const decoder = new ZstdFrameDecoder();
  const data = sample(10_000, 3);
  const into = new Uint8Array(10_001);
  const out = decoder.decode(frameOf(data), data.length, into);
  assert.equal(out.buffer, into.buffer);
  assertBytes(out, data);
  const tooSmall = new Uint8Array(10_000);
  assert.notEqual(decoder.decode(frameOf(data), data.length, tooSmall).buffer, tooSmall.buffer);
});

test('a frame holding more or fewer bytes than expected comes back at its real length', () => {
  const decoder = new ZstdFrameDecoder();
  const data = sample(70_000, 4);
  assertBytes(decoder.decode(frameOf(data), 50_000), data);
  assertBytes(decoder.decode(frameOf(data), 90_000), data);
  assertBytes(decoder.decode(frameOf(data), data.length), data);
});

test('a damaged frame fails or decodes to the wrong length, and the decoder goes on cleanly with the next', () => {
  const decoder = new ZstdFrameDecoder();
  const data = sample(65536, 5);
  const frame = frameOf(data);
  assert.throws(() => decoder.decode(new TextEncoder().encode('not zstd at all, not even close'), 100));
  assertBytes(decoder.decode(frame, data.length), data);
  // Cut short: an error, and the half-read frame does not leak into the next.
  assert.throws(() => decoder.decode(frame.subarray(0, frame.length >> 1), data.length), /unexpected end/);
  assertBytes(decoder.decode(frame, data.length), data);
  // Two frames back to back are more than one chunk.
  const two = new Uint8Array([...frame, ...frame]);
  assert.equal(decoder.decode(two, data.length).length, 2 * data.length);
  assertBytes(decoder.decode(frame, data.length), data);
});

test('frames made together with one dictionary each decode alone with it, and are as small as made one by one', () => {
  const dictionary = sample(300_000, 11);
  // Edited copies of parts of the dictionary, and one unrelated chunk.
  const chunks = [0, 70_000, 150_000, 230_000].map((at, i) => {
    const chunk = new Uint8Array(dictionary.subarray(at, at + 60_000));
    chunk.set(sample(500, 100 + i), 1000 * (i + 1));
    return chunk;
  });
  chunks.push(new Uint8Array(sample(40_000, 999)));
  const frames = encodeAllWithDictionary(chunks, dictionary, 3);
  assert.equal(frames.length, chunks.length);
  for (const [i, frame] of frames.entries()) {
    const options = { dictionary } as Parameters<typeof zstdDecompressSync>[1];
    assert.deepEqual(new Uint8Array(zstdDecompressSync(frame, options)), chunks[i], `chunk ${i}`);
    assert.equal(frame.length, encodeWithDictionary(chunks[i], dictionary, 3).length, `chunk ${i}`);
  }
  // The dictionary is what makes the edited copies small.
  for (const i of [0, 1, 2, 3]) assert.ok(frames[i].length < zstdCompressSync(chunks[i]).length / 10, `chunk ${i}`);
});

test('a small frame of far more bytes than expected throws rather than being inflated whole', () => {
  const decoder = new ZstdFrameDecoder();
  const bomb = frameOf(new Uint8Array(64 * 1024 * 1024));
  assert.ok(bomb.length < 64 * 1024, 'the frame is small');
  assert.throws(() => decoder.decode(bomb, 1000));
  const data = sample(1000, 6);
  assertBytes(decoder.decode(frameOf(data), data.length), data);
});
