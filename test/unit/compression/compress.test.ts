import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Transform } from 'node:stream';
import { describe, test } from 'node:test';
import { Bzip2Encoder, RotationSorter } from '../../../src/compression/bzip2-encoder.ts';
import { bzip2Crc } from '../../../src/compression/bzip2-crc.ts';
import { createCompressor } from '../../../src/compression/compress.ts';
import type { Compression } from '../../../src/compression/compression.ts';
import { createDecompressor } from '../../../src/compression/decompress.ts';
import { Lz4FrameEncoder } from '../../../src/compression/lz4-frame-encoder.ts';
import { isNarwhalError } from '../../../src/errors.ts';
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

async function runTool(argv: [string, ...string[]], input: Buffer): Promise<Buffer> {
  const [command, ...args] = argv;
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  // A decoder that rejects its input may exit before reading all of it; its status tells.
  let stdinError: Error | null = null;
  child.stdin.on('error', (e: Error) => {
    stdinError = e;
  });
  child.stdin.end(input);
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0, `${command} failed: ${Buffer.concat(err).toString()} ${stdinError ?? ''}`);
  return Buffer.concat(out);
}

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

/** Runs of the given lengths, each of a byte different from its neighbours'. */
function runs(lengths: number[]): Buffer {
  const parts: Buffer[] = [];
  lengths.forEach((length, i) => parts.push(Buffer.alloc(length, 0x41 + (i % 20))));
  return Buffer.concat(parts);
}

function randomRuns(total: number, seed: number): Buffer {
  const rng = random(seed);
  const out = Buffer.alloc(total);
  let at = 0;
  let prev = -1;
  while (at < total) {
    let b = Math.floor(rng() * 6);
    if (b === prev) b = (b + 1) % 6;
    prev = b;
    const r = rng();
    const length = r < 0.5 ? 1 + Math.floor(rng() * 8) : r < 0.8 ? 250 + Math.floor(rng() * 12) : 1 + Math.floor(rng() * 1100);
    out.fill(b, at, Math.min(total, at + length));
    at += length;
  }
  return out;
}

const nixBinary = readFileSync('/usr/bin/nix');

const inputs: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['a short text', Buffer.from('hello, world\n')],
  ['a real binary (/usr/bin/nix)', nixBinary],
  ['1 MiB of zeros', Buffer.alloc(1 << 20)],
  ['1 MiB of one byte', Buffer.alloc(1 << 20, 0xab)],
  ['runs around the RLE limits', runs([1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 509, 510, 511, 512, 1019, 1020, 1021, 4, 5, 4])],
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
        assert.ok(decoded.equals(input), `${compression} round trip of ${name} differs (${decoded.length} vs ${input.length} bytes)`);
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
  assert.throws(() => createCompressor('lzip' as Compression), (e: unknown) => isNarwhalError(e, 'bad-compression'));
});

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

describe('lz4 frame encoder', () => {
  test('every block size writes frames lz4 decodes', async () => {
    const input = Buffer.concat([nixBinary.subarray(0, 600000), seededBytes(70000, 4), Buffer.alloc(300000)]);
    for (const size of [65536, 262144, 1048576, 4194304] as const) {
      const encoder = new Lz4FrameEncoder(size);
      const out = [...encoder.update(input.subarray(0, 100)), ...encoder.update(input.subarray(100)), ...encoder.finish()];
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
