import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import zlib from 'node:zlib';
import type { Compression } from '../../../src/compression/compression.ts';
import { createDecompressor } from '../../../src/compression/decompress.ts';
import { isNarwhalError } from '../../../src/errors.ts';
import { seededRandom as rng } from '../../helpers/seeded-random.ts';
import { realBinary } from '../../helpers/test-data.ts';

type Packed = Exclude<Compression, 'none'>;
const formats: Packed[] = ['xz', 'zstd', 'bzip2', 'br', 'gzip', 'lz4'];

/** The real CLI tools are the oracles: what they write, we must read. */
const commands: Record<Packed, string[]> = {
  xz: ['xz', '-c', '-T1'],
  zstd: ['zstd', '-q', '-c'],
  bzip2: ['bzip2', '-c'],
  br: ['brotli', '-c'],
  gzip: ['gzip', '-c', '-n'],
  lz4: ['lz4', '-q', '-c'],
};

function compress(c: Packed, data: Uint8Array, extra: string[] = []): Buffer {
  const [command, ...args] = commands[c];
  const result = spawnSync(command, [...args, ...extra], { input: data, maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, `${command} failed: ${result.stderr}`);
  return result.stdout;
}

/** Splits data into random pieces, many tiny ones among them. */
function split(data: Uint8Array, seed: number): Buffer[] {
  const random = rng(seed);
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const n = 1 + Math.floor(random() * (random() < 0.5 ? 64 : 65536));
    pieces.push(Buffer.from(data.subarray(i, i + n)));
    i += n;
  }
  return pieces;
}

async function decompress(c: Compression | 'auto', input: Uint8Array, seed = 1): Promise<Buffer> {
  const output: Buffer[] = [];
  await pipeline(
    Readable.from(split(input, seed)),
    createDecompressor(c),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(output);
}

async function assertBad(c: Compression | 'auto', input: Uint8Array, name: string, format = c): Promise<void> {
  await assert.rejects(
    decompress(c, input),
    (error: unknown) => {
      assert.ok(isNarwhalError(error, 'bad-compression'), `${name}: ${String(error)}`);
      assert.ok(error.message.startsWith(`corrupt ${format} stream: `), error.message);
      assert.ok(error.message.length < 100, error.message);
      return true;
    },
    name,
  );
}

const sample = realBinary(3 << 20);
const smallInputs: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from([0x42])],
  ['short text', Buffer.from('hello, narwhal\n')],
  ['1 MiB of zeros', Buffer.alloc(1 << 20)],
  ['repeated text', Buffer.from('nix-archive-1 (type regular contents) '.repeat(20000))],
];

const packedSamples = new Map<Packed, Buffer>();

function packedSample(c: Packed): Buffer {
  let packed = packedSamples.get(c);
  if (packed === undefined) {
    packed = compress(c, sample);
    packedSamples.set(c, packed);
  }
  return packed;
}

for (const c of formats) {
  const packed = packedSample(c);

  test(`${c}: decodes what the ${commands[c][0]} CLI wrote, fed in random pieces`, async () => {
    assert.ok((await decompress(c, packed, 1)).equals(sample));
    assert.ok((await decompress(c, packed, 2)).equals(sample));
    for (const [name, data] of smallInputs) {
      assert.ok((await decompress(c, compress(c, data))).equals(data), name);
    }
  });

  test(`${c}: a flipped byte, truncation, trailing data or empty input fail as bad-compression`, async () => {
    const flipped = Buffer.from(packed);
    flipped[flipped.length >> 1] ^= 0x55;
    await assertBad(c, flipped, 'flipped byte');
    await assertBad(c, packed.subarray(0, packed.length >> 1), 'cut in half');
    await assertBad(c, packed.subarray(0, packed.length - 1), 'last byte missing');
    await assertBad(c, packed.subarray(0, 3), 'first three bytes only');
    await assertBad(c, Buffer.concat([packed, Buffer.from('garbage after the end')]), 'trailing text');
    await assertBad(c, Buffer.concat([packed, Buffer.from([0])]), 'trailing zero byte');
    await assertBad(c, Buffer.concat([packed, packed.subarray(0, 5)]), 'trailing partial stream');
    await assertBad(c, Buffer.alloc(0), 'empty input');
    await assertBad(c, sample.subarray(0, 100000), 'uncompressed data');
  });

  if (c === 'br') {
    test('br: two concatenated streams are trailing data (brotli has no multi-stream form)', async () => {
      await assertBad(c, Buffer.concat([packed, packed]), 'two streams');
    });
  } else {
    test(`${c}: concatenated streams decode to the concatenated data`, async () => {
      const second = compress(c, smallInputs[4][1]);
      const expected = Buffer.concat([sample, smallInputs[4][1], sample]);
      assert.ok((await decompress(c, Buffer.concat([packed, second, packed]))).equals(expected));
    });
  }
}

test('none: passes bytes through unchanged', async () => {
  assert.ok((await decompress('none', sample)).equals(sample));
  assert.equal((await decompress('none', Buffer.alloc(0))).length, 0);
});

test('xz: stream padding (zero bytes in multiples of four) is part of the format and accepted', async () => {
  const packed = compress('xz', smallInputs[2][1]);
  const padded = Buffer.concat([packed, Buffer.alloc(8)]);
  assert.ok((await decompress('xz', padded)).equals(smallInputs[2][1]));
  await assertBad('xz', Buffer.concat([packed, Buffer.alloc(6)]), 'padding not a multiple of four');
});

test('xz: dictionaries up to 64 MiB (xz -9) are accepted, larger ones refused', async () => {
  const data = smallInputs[2][1];
  const packed = compress('xz', data);
  // The block header follows the 12-byte stream header: size, flags, LZMA2 filter id 0x21, one
  // property byte (the dictionary size), padding, CRC32 of the header.
  assert.deepEqual([...packed.subarray(13, 16)], [0x00, 0x21, 0x01]);
  const withDictionary = (property: number): Buffer => {
    const forged = Buffer.from(packed);
    forged[16] = property;
    forged.writeUInt32LE(zlib.crc32(forged.subarray(12, 20)), 20);
    return forged;
  };
  assert.ok((await decompress('xz', withDictionary(28))).equals(data), '64 MiB');
  await assert.rejects(decompress('xz', withDictionary(30)), (error: unknown) => {
    assert.ok(isNarwhalError(error, 'bad-compression'));
    assert.equal(error.message, 'corrupt xz stream: needs more than 80 MiB of memory');
    return true;
  });
});

test('zstd: skippable frames before, between and after frames are skipped', async () => {
  const skippable = (payload: string): Buffer => {
    const header = Buffer.alloc(8);
    header.writeUInt32LE(0x184d2a53, 0);
    header.writeUInt32LE(payload.length, 4);
    return Buffer.concat([header, Buffer.from(payload)]);
  };
  const a = compress('zstd', smallInputs[2][1]);
  const b = compress('zstd', smallInputs[4][1]);
  const input = Buffer.concat([skippable('first'), a, skippable('between'), b, skippable('')]);
  assert.ok((await decompress('zstd', input)).equals(Buffer.concat([smallInputs[2][1], smallInputs[4][1]])));
});

test('zstd: a frame whose window exceeds the 128 MiB default limit is refused', async () => {
  const data = Buffer.from('x'.repeat(1000));
  await assertBad('zstd', compress('zstd', data, ['--long=30', '--ultra', '-22']), 'window 2^30');
});

test('gzip: multi-member files (what `cat a.gz b.gz` gives) decode fully', async () => {
  const member = compress('gzip', smallInputs[2][1]);
  const input = Buffer.concat([member, member, member]);
  assert.ok(
    (await decompress('gzip', input)).equals(Buffer.concat([smallInputs[2][1], smallInputs[2][1], smallInputs[2][1]])),
  );
});

const narStart = Buffer.concat([Buffer.from([13, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('nix-archive-1\0\0\0')]);

test('auto: gzip is recognised by its magic bytes, even when they arrive one at a time', async () => {
  const packed = compress('gzip', sample);
  assert.ok((await decompress('auto', packed)).equals(sample));
  const bytewise: Buffer[] = [];
  const d = createDecompressor('auto');
  assert.equal(d.compression, undefined);
  const done = pipeline(
    Readable.from([packed.subarray(0, 1), packed.subarray(1, 2), packed.subarray(2)]),
    d,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        bytewise.push(chunk);
        callback();
      },
    }),
  );
  await done;
  assert.equal(d.compression, 'gzip');
  assert.ok(Buffer.concat(bytewise).equals(sample));
});

test('auto: anything else passes through unchanged', async () => {
  const nar = Buffer.concat([narStart, sample.subarray(0, 100000)]);
  assert.ok((await decompress('auto', nar)).equals(nar));
  for (const input of [
    Buffer.alloc(0),
    Buffer.from([0x1f]),
    Buffer.from([0x1f, 0x8a, 1, 2]),
    Buffer.from([0x8b, 0x1f]),
  ]) {
    assert.ok((await decompress('auto', input)).equals(input), input.toString('hex'));
  }
  const d = createDecompressor('auto');
  d.end(narStart);
  for await (const _ of d);
  assert.equal(d.compression, 'none');
});

test('auto: corrupt gzip fails as bad gzip', async () => {
  const packed = compress('gzip', sample);
  await assertBad('auto', packed.subarray(0, packed.length - 4), 'truncated gzip', 'gzip');
});

/**
 * One stream of 256 MiB of zeros, compressed fast: what a decompression bomb looks like. The zeros
 * come from /dev/zero so that no large buffer of ours is freed during the memory measurement.
 */
function bomb(c: Packed): Buffer {
  const fast: Record<Packed, string> = { xz: '-1', zstd: '', bzip2: '', br: '-q 5', gzip: '-1', lz4: '' };
  const command = `head -c ${256 << 20} /dev/zero | ${commands[c].join(' ')} ${fast[c]}`;
  const result = spawnSync('sh', ['-c', command], { maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, `${command} failed: ${result.stderr}`);
  return result.stdout;
}

for (const c of formats) {
  test(`${c}: decodes only as fast as the output is read (bounded memory on a bomb)`, async (t) => {
    const input = bomb(c);
    const d = createDecompressor(c);
    t.after(() => d.destroy());
    let consumed = false;
    const before = process.memoryUsage().arrayBuffers;
    d.write(input, () => {
      consumed = true;
    });
    d.end();
    await once(d, 'readable');
    // Give an engine that ignored backpressure the time to decode much more.
    await sleep(300);
    assert.ok(d.readableLength <= 1 << 20, `readable buffer holds ${d.readableLength} bytes`);
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 64 << 20, `buffers grew by ${grown} bytes`);
    const zeros = Buffer.alloc(4 << 20);
    let total = 0;
    for await (const chunk of d) {
      const bytes = chunk as Buffer;
      total += bytes.length;
      assert.ok(bytes.length <= zeros.length && bytes.equals(zeros.subarray(0, bytes.length)));
    }
    assert.equal(total, 256 << 20);
    assert.equal(consumed, true);
  });

  test(`${c}: destroying the stream midway stops it cleanly`, async () => {
    const d = createDecompressor(c);
    const packed = packedSample(c);
    d.write(packed);
    const first = await new Promise<Buffer>((resolve) => d.once('data', resolve));
    assert.ok(first.length > 0);
    d.destroy();
    await new Promise((resolve) => d.once('close', resolve));
    await sleep(50);
    assert.equal(d.destroyed, true);
  });
}
