import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { zstdCompressSync } from 'node:zlib';
import {
  decodeDelta,
  encodeDelta,
  parseStored,
  rawFrameSize,
  rawZstdFrame,
  RAW_BLOCK_BYTES,
} from '../../../src/delta/stored-form.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';

const id = (n: number): Uint8Array => new Uint8Array(32).fill(n);

function similar(base: Uint8Array): Uint8Array {
  const changed = base.slice();
  for (let at = 100; at < changed.length; at += 4096) changed[at] ^= 0xff;
  return changed;
}

test('a delta names its bases in order and decodes with their contents', () => {
  const a = new Uint8Array(randomBytes(60_000));
  const b = new Uint8Array(randomBytes(30_000));
  const content = similar(new Uint8Array(Buffer.concat([a, b])));
  const stored = encodeDelta(
    content,
    [
      { id: id(1), content: a },
      { id: id(2), content: b },
    ],
    9,
  );
  assert.ok(stored.length < 5_000, `a delta of similar content is small (${stored.length})`);
  const form = parseStored(stored);
  assert.equal(form.kind, 'delta');
  if (form.kind !== 'delta') return;
  assert.deepEqual(form.bases, [id(1), id(2)]);
  assert.ok(Buffer.from(decodeDelta(form.frame, [a, b], 1 << 20)).equals(content));
  // Another dictionary decodes to other bytes, which the chunk id check (chunk-check-worker.ts) refuses.
  let other: Uint8Array | undefined;
  try {
    other = decodeDelta(form.frame, [b, a], 1 << 20);
  } catch {}
  assert.ok(!other || !Buffer.from(other).equals(content));
  assert.throws(() => decodeDelta(form.frame, [a, b], 1000), 'more than maxSize throws');
});

test('a plain zstd frame, and bytes that are neither, parse as plain', () => {
  assert.deepEqual(parseStored(zstdCompressSync(randomBytes(100))), { kind: 'plain' });
  assert.deepEqual(parseStored(new Uint8Array(3)), { kind: 'plain' });
  const stored = encodeDelta(new Uint8Array(10), [{ id: id(3), content: new Uint8Array(10) }], 3);
  assert.throws(() => parseStored(stored.subarray(0, 41)), /malformed/);
  const zeroBases = stored.slice();
  zeroBases[8] = 0;
  assert.throws(() => parseStored(zeroBases), /malformed/);
  assert.throws(() => encodeDelta(new Uint8Array(1), [], 3), /1 to/);
});

test('raw frames have the computed size and the zstd CLI decodes them, alone and between normal frames', () => {
  for (const size of [0, 1, 255, 256, 65_536, RAW_BLOCK_BYTES - 1, RAW_BLOCK_BYTES, RAW_BLOCK_BYTES + 1, 262_144]) {
    const content = new Uint8Array(randomBytes(size));
    const frame = rawZstdFrame(content);
    assert.equal(frame.length, rawFrameSize(size), `size ${size}`);
    assert.ok(unzstd(frame).equals(content), `size ${size}`);
  }
  const parts = [randomBytes(70_000), randomBytes(200_000), Buffer.alloc(50_000, 7), randomBytes(1)];
  const stream = Buffer.concat([
    zstdCompressSync(parts[0]),
    rawZstdFrame(parts[1]),
    rawZstdFrame(parts[2]),
    zstdCompressSync(parts[3]),
  ]);
  assert.ok(unzstd(stream).equals(Buffer.concat(parts)));
  assert.equal(rawFrameSize(RAW_BLOCK_BYTES * 2 + 1), 9 + 3 * 3 + RAW_BLOCK_BYTES * 2 + 1);
});
