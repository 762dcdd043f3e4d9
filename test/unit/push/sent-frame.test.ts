/**
 * Which frames a pusher sends are kept as sent (src/push/sent-frame.ts): exactly one plain zstd
 * frame declaring the chunk's size; anything else that decodes to the chunk is stored recompressed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, zstdCompressSync } from 'node:zlib';
import { DELTA_MAGIC } from '../../../src/delta/stored-form.ts';
import { encoderPerLevel } from '../../../src/storage/zstd-frames.ts';
import { frameContentSize, isSinglePlainFrame } from '../../../src/push/sent-frame.ts';
import { seededBytes } from '../../helpers/test-data.ts';

const data = new Uint8Array(Buffer.concat([seededBytes(150_000, 3), Buffer.alloc(150_000)]));

test('one plain frame of the chunk, with or without a checksum, at any level, is kept as sent', () => {
  for (const frame of [
    encoderPerLevel()(3).encode(data),
    zstdCompressSync(data),
    zstdCompressSync(data, { params: { [constants.ZSTD_c_checksumFlag]: 1, [constants.ZSTD_c_compressionLevel]: 1 } }),
  ]) {
    assert.equal(frameContentSize(frame), data.length);
    assert.ok(isSinglePlainFrame(frame, data.length));
  }
});

test('two frames, trailing bytes, a skippable frame first, a frame cut short or of another size are not', () => {
  const half = data.length / 2;
  const frame = zstdCompressSync(data);
  const skippable = Buffer.alloc(12);
  skippable.writeUInt32LE(DELTA_MAGIC, 0);
  skippable.writeUInt32LE(4, 4);
  const cases: [string, Uint8Array][] = [
    ['two frames', Buffer.concat([zstdCompressSync(data.subarray(0, half)), zstdCompressSync(data.subarray(half))])],
    ['trailing bytes', Buffer.concat([frame, Buffer.from([0])])],
    ['a skippable frame first', Buffer.concat([skippable, frame])],
    ['cut short', frame.subarray(0, frame.length - 1)],
    ['another size', zstdCompressSync(data.subarray(1))],
  ];
  for (const [what, bytes] of cases) assert.equal(isSinglePlainFrame(bytes, data.length), false, what);
});
