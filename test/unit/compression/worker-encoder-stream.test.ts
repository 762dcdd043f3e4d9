import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { Bzip2Encoder } from '../../../src/compression/bzip2/bzip2-encoder.ts';
import { createCompressor } from '../../../src/compression/compress.ts';
import { Lz4FrameEncoder } from '../../../src/compression/lz4/lz4-frame-encoder.ts';
import { nixBinary, randomRuns, runTool } from '../../helpers/codec-tools.ts';
import { seededRandom as random } from '../../helpers/seeded-random.ts';
import { seededBytes } from '../../helpers/test-data.ts';

/** Several MB mixing a real binary, runs (bzip2's RLE and block limits) and incompressible bytes. */
const input = Buffer.concat([
  nixBinary.subarray(0, 3_000_000),
  randomRuns(2_500_000, 3),
  seededBytes(1_200_000, 5),
  Buffer.alloc(700_000),
]);

/** Writes `data` in pieces of random sizes, with backpressure, and returns the whole output. */
async function throughCompressor(compression: 'bzip2' | 'lz4', data: Buffer, seed: number): Promise<Buffer> {
  const rng = random(seed);
  const stream = createCompressor(compression);
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(stream, 'end');
  for (let at = 0; at < data.length; ) {
    const size = 1 + Math.floor(rng() * (rng() < 0.5 ? 4096 : 3 << 20));
    if (!stream.write(data.subarray(at, at + size))) await once(stream, 'drain');
    at += size;
  }
  stream.end();
  await ended;
  return Buffer.concat(chunks);
}

const mainThread = {
  bzip2: (data: Buffer): Buffer => {
    const encoder = new Bzip2Encoder(1);
    return Buffer.concat([...encoder.update(data), ...encoder.finish()]);
  },
  lz4: (data: Buffer): Buffer => {
    const encoder = new Lz4FrameEncoder(1048576);
    return Buffer.concat([...encoder.update(data), ...encoder.finish()]);
  },
};
const tools = { bzip2: ['bzip2', '-dc'], lz4: ['lz4', '-dc'] } as const;

for (const compression of ['bzip2', 'lz4'] as const) {
  describe(`${compression} on the worker pool`, () => {
    test('writes the bytes the main-thread encoder writes, which the real tool decodes', async () => {
      const expected = mainThread[compression](input);
      for (const seed of [1, 2]) {
        const out = await throughCompressor(compression, input, seed);
        assert.equal(out.length, expected.length);
        assert.ok(out.equals(expected), `seed ${seed}: output differs from the main-thread encoder's`);
      }
      assert.ok((await runTool([...tools[compression]], expected)).equals(input));
    });

    test('a stream suspended anywhere resumes in another encoder to the same bytes', () => {
      const expected = mainThread[compression](input);
      const rng = random(9);
      const make = compression === 'bzip2' ? () => new Bzip2Encoder(1) : () => new Lz4FrameEncoder(1048576);
      let encoder = make();
      const out: Uint8Array[] = [];
      for (let at = 0; at < input.length; ) {
        const size = 1 + Math.floor(rng() * 400_000);
        out.push(...encoder.update(input.subarray(at, at + size)));
        at += size;
        const { output, state } = encoder.suspend();
        out.push(output);
        encoder = make();
        // The next encoder has run another stream before: restore forgets it.
        encoder.update(seededBytes(1000, at));
        (encoder.restore as (s: typeof state) => void)(state);
      }
      out.push(...encoder.finish());
      assert.ok(Buffer.concat(out).equals(expected));
    });
  });
}
