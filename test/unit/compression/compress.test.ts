import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Transform } from 'node:stream';
import { describe, test } from 'node:test';
import { createCompressor } from '../../../src/compression/compress.ts';
import type { Compression } from '../../../src/compression/compression.ts';
import { createDecompressor } from '../../../src/compression/decompress.ts';
import { isNarwhalError } from '../../../src/errors.ts';
import { nixBinary, randomRuns, runs, runTool } from '../../helpers/codec-tools.ts';
import { seededRandom as random } from '../../helpers/seeded-random.ts';
import { seededBytes } from '../../helpers/test-data.ts';

const all: Compression[] = ['none', 'xz', 'zstd', 'bzip2', 'br', 'gzip', 'lz4'];

/** The real tools, as oracles: each decodes its format from stdin to stdout. */
const decoders: Record<Exclude<Compression, 'none'>, [string, ...string[]]> = {
  xz: ['xz', '-dc'],
  zstd: ['zstd', '-dcq'],
  bzip2: ['bzip2', '-dc'],
  br: ['brotli', '-dc'],
  gzip: ['gzip', '-dc'],
  lz4: ['lz4', '-dc'],
};

async function decodeWithTool(compression: Compression, data: Buffer): Promise<Buffer> {
  return compression === 'none' ? data : runTool(decoders[compression], data);
}

/** Compresses input written in pieces of random sizes (from 1 byte to 256 KiB), with backpressure. */
async function compress(compression: Compression, input: Buffer, seed = 1): Promise<Buffer> {
  const rng = random(seed);
  const stream = createCompressor(compression);
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(stream, 'end');
  let at = 0;
  while (at < input.length) {
    const size = rng() < 0.3 ? 1 + Math.floor(rng() * 16) : 1 + Math.floor(rng() * 262144);
    if (!stream.write(input.subarray(at, at + size))) await once(stream, 'drain');
    at += size;
  }
  stream.end();
  await ended;
  return Buffer.concat(chunks);
}

const inputs: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['a short text', Buffer.from('hello, world\n')],
  ['a real binary (/usr/bin/nix)', nixBinary],
  ['1 MiB of zeros', Buffer.alloc(1 << 20)],
  ['1 MiB of one byte', Buffer.alloc(1 << 20, 0xab)],
  [
    'runs around the RLE limits',
    runs([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 509, 510, 511, 512, 1019, 1020,
      1021, 4, 5, 4,
    ]),
  ],
  ['a run of exactly 4 at the end', Buffer.from('abcdddd')],
  ['a run of exactly 5 at the end', Buffer.from('abcddddd')],
  ['a run of exactly 255', Buffer.alloc(255, 7)],
  ['a run of exactly 256', Buffer.alloc(256, 7)],
  ['runs of 4 filling many blocks', runs(new Array(300000).fill(4))],
  ['2 MB of random runs', randomRuns(2_000_000, 7)],
  ['a period of 3 (1.5 MB)', Buffer.from('abc'.repeat(500000))],
  ['a period of 7 over a block boundary', Buffer.from('0123456'.repeat(30000))],
  ['incompressible bytes (300 kB)', seededBytes(300000, 3)],
];

for (const compression of all) {
  describe(`createCompressor('${compression}')`, () => {
    for (const [name, input] of inputs) {
      test(`${name}: the real tool decodes the original bytes`, async () => {
        const compressed = await compress(compression, input, input.length);
        const decoded = await decodeWithTool(compression, compressed);
        assert.ok(
          decoded.equals(input),
          `${compression} round trip of ${name} differs (${decoded.length} vs ${input.length} bytes)`,
        );
      });
    }

    if (compression !== 'none') {
      test('compressible data comes out smaller', async () => {
        for (const input of [nixBinary, Buffer.alloc(1 << 20)]) {
          const compressed = await compress(compression, input);
          assert.ok(compressed.length < input.length * 0.6, `${compressed.length} of ${input.length}`);
        }
      });
    }

    test("Narwhal's own decompressor decodes it too", async () => {
      const input = Buffer.concat([nixBinary.subarray(0, 500000), randomRuns(300000, 11)]);
      const compressed = await compress(compression, input, 5);
      const decoder = createDecompressor(compression);
      const parts: Buffer[] = [];
      decoder.on('data', (c: Buffer) => parts.push(c));
      decoder.end(compressed);
      await once(decoder, 'end');
      assert.ok(Buffer.concat(parts).equals(input));
    });

    test('stops taking input while its output is not read', async () => {
      const stream = createCompressor(compression);
      // Incompressible, never repeating input: output as large as the input.
      const rng = random(17);
      const limit = 64 << 20;
      let accepted = 0;
      while (accepted < limit) {
        const piece = Buffer.alloc(4096);
        for (let i = 0; i < piece.length; i += 4) piece.writeUInt32LE(Math.floor(rng() * 4294967296), i);
        if (stream.write(piece)) {
          accepted += piece.length;
          continue;
        }
        accepted += piece.length;
        // Waits for a drain; none within a while means the stream has stopped taking input.
        const drained = await Promise.race([
          once(stream, 'drain').then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300)),
        ]);
        if (!drained) break;
      }
      assert.ok(accepted < 8 << 20, `took ${accepted} bytes without its output being read`);
      stream.destroy();
      await once(stream, 'close');
    });
  });
}

test('a bzip2 compressor destroyed in the middle of a large chunk stops cleanly', async () => {
  const stream: Transform = createCompressor('bzip2');
  stream.on('error', (e: Error) => assert.fail(e));
  stream.write(randomRuns(3_000_000, 5));
  await new Promise((resolve) => setImmediate(resolve));
  stream.destroy();
  await once(stream, 'close');
});

test('createCompressor rejects an unknown compression', () => {
  assert.throws(
    () => createCompressor('lzip' as Compression),
    (e: unknown) => isNarwhalError(e, 'bad-compression'),
  );
});
