import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Bzip2Encoder, RotationSorter } from '../../../../src/compression/bzip2/bzip2-encoder.ts';
import { bzip2Crc } from '../../../../src/compression/bzip2/bzip2-crc.ts';
import { nixBinary, randomRuns, runTool } from '../../../helpers/codec-tools.ts';
import { seededRandom as random } from '../../../helpers/seeded-random.ts';

describe('bzip2 encoder', () => {
  test('CRC is CRC-32/BZIP2', () => {
    assert.equal(bzip2Crc(Buffer.from('123456789')), 0xfc891918);
    assert.equal(bzip2Crc(Buffer.alloc(0)), 0);
  });

  test('rotations are sorted like a naive sort does', () => {
    const rng = random(42);
    const sorter = new RotationSorter(5000);
    const cases: Uint8Array[] = [Uint8Array.of(5), Uint8Array.of(2, 1), Buffer.from('banana'), Buffer.alloc(64, 9)];
    for (let k = 0; k < 300; k++) {
      const n = 1 + Math.floor(rng() * (k < 200 ? 40 : 5000));
      const alphabet = 1 + Math.floor(rng() * (k % 3 === 0 ? 2 : 256));
      const period = k % 4 === 0 ? 1 + Math.floor(rng() * 10) : n;
      const block = new Uint8Array(n);
      for (let i = 0; i < n; i++) block[i] = i < period ? Math.floor(rng() * alphabet) : block[i - period];
      cases.push(block);
    }
    for (const block of cases) {
      const n = block.length;
      const rotation = (i: number): Buffer => Buffer.concat([block.subarray(i), block.subarray(0, i)]);
      const expected = Array.from({ length: n }, (_, i) => rotation(i)).sort(Buffer.compare);
      const order = sorter.sort(block, n);
      for (let i = 0; i < n; i++) {
        assert.ok(rotation(order[i]).equals(expected[i]), `block of ${n} bytes: rank ${i} is wrong`);
      }
    }
  });

  test('every level from 1 to 9 writes streams bzip2 decodes', async () => {
    const input = Buffer.concat([nixBinary.subarray(0, 250000), randomRuns(100000, 9)]);
    for (const level of [1, 2, 5, 9] as const) {
      const encoder = new Bzip2Encoder(level);
      const out = [...encoder.update(input), ...encoder.finish()];
      const compressed = Buffer.concat(out);
      assert.equal(compressed.subarray(0, 4).toString(), `BZh${level}`);
      assert.ok((await runTool(['bzip2', '-dc'], compressed)).equals(input), `level ${level}`);
    }
  });
});
