import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lz4FrameEncoder } from '../../../../src/compression/lz4/lz4-frame-encoder.ts';
import { nixBinary, runTool } from '../../../helpers/codec-tools.ts';
import { seededBytes } from '../../../helpers/test-data.ts';

describe('lz4 frame encoder', () => {
  test('every block size writes frames lz4 decodes', async () => {
    const input = Buffer.concat([nixBinary.subarray(0, 600000), seededBytes(70000, 4), Buffer.alloc(300000)]);
    for (const size of [65536, 262144, 1048576, 4194304] as const) {
      const encoder = new Lz4FrameEncoder(size);
      const out = [
        ...encoder.update(input.subarray(0, 100)),
        ...encoder.update(input.subarray(100)),
        ...encoder.finish(),
      ];
      assert.ok((await runTool(['lz4', '-dc'], Buffer.concat(out))).equals(input), `block size ${size}`);
    }
  });

  test('incompressible blocks are stored', () => {
    const input = seededBytes(200000, 8);
    const encoder = new Lz4FrameEncoder(65536);
    const frame = Buffer.concat([...encoder.update(input), ...encoder.finish()]);
    // Header 7, four blocks with 4-byte sizes, end mark 4, checksum 4.
    assert.equal(frame.length, 7 + input.length + 4 * 4 + 8);
    assert.equal(frame.readUInt32LE(7), (0x80000000 | 65536) >>> 0);
  });
});
