import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { createDecompressor } from '../../../../src/compression/decompress.ts';
import { Lz4FrameDecoder } from '../../../../src/compression/lz4/lz4-frame-decoder.ts';
import { xxh32, Xxh32 } from '../../../../src/compression/lz4/xxhash32.ts';
import { isNarwhalError } from '../../../../src/errors.ts';
import { seededRandom as rng } from '../../../helpers/seeded-random.ts';
import { assertCorruptStream, decodeInRandomPieces } from '../../../helpers/pull-decoder.ts';
import { realBinary, seededBytes } from '../../../helpers/test-data.ts';

const dir = mkdtempSync(join(tmpdir(), 'narwhal-lz4-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the real lz4 CLI on a file (so that --content-size knows the size). */
function lz4(data: Uint8Array, options: string[]): Buffer {
  const file = join(dir, 'input');
  writeFileSync(file, data);
  const result = spawnSync('lz4', ['-q', '-c', ...options, file], { maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, `lz4 ${options.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

function decode(input: Uint8Array, seed = 1): Buffer {
  return decodeInRandomPieces(new Lz4FrameDecoder(), input, { seed, maxPiece: 200000, maxOutput: 256 * 1024 });
}

function assertBad(input: Uint8Array, detail: RegExp | string, name = String(detail)): void {
  assertCorruptStream(() => decode(input), 'lz4', detail, name);
}

const sample = realBinary(9 << 20);
const incompressible = seededBytes(300000, 7);
// Long overlapping matches: runs with periods 1, 2, 3 and 7.
const repetitive = Buffer.concat([
  Buffer.alloc(200000, 0x61),
  Buffer.from('ab'.repeat(100000)),
  Buffer.from('xyz'.repeat(70000)),
  Buffer.from('1234567'.repeat(30000)),
]);

test('xxh32 matches the reference vectors', () => {
  assert.equal(xxh32(new Uint8Array(0)), 0x02cc5d05);
  assert.equal(xxh32(Buffer.from('a')), 0x550d7456);
  assert.equal(xxh32(Buffer.from('abc')), 0x32d153ff);
  assert.equal(xxh32(Buffer.from('Nobody inspects the spammish repetition')), 0xe2293b2f);
});

test('streaming xxh32 equals the content checksum the lz4 CLI writes, however the data is split', () => {
  const data = sample.subarray(0, 1 << 20);
  const packed = lz4(data, []);
  const expected = packed.readUInt32LE(packed.length - 4);
  assert.equal(xxh32(data), expected);
  const random = rng(3);
  const hash = new Xxh32();
  for (let i = 0; i < data.length; ) {
    const n = Math.floor(random() * 40);
    hash.update(data.subarray(i, i + n));
    i += n;
  }
  assert.equal(hash.digest(), expected);
});

const flagSets: string[][] = [
  [],
  ['-BX'],
  ['--no-frame-crc'],
  ['--content-size'],
  ['-BX', '--no-frame-crc', '--content-size'],
];

for (const blockSize of [4, 5, 6, 7]) {
  for (const linked of [false, true]) {
    test(`every CLI frame option, -B${blockSize} ${linked ? '-BD (linked blocks)' : '-BI (independent blocks)'}`, () => {
      for (const flags of flagSets) {
        const options = [`-B${blockSize}`, linked ? '-BD' : '-BI', ...flags];
        const packed = lz4(sample, options);
        // The frame descriptor says what the CLI did; make sure each option took effect.
        const flg = packed[4];
        assert.equal((flg & 0x20) === 0, linked, `${options} independence`);
        assert.equal((flg & 0x10) !== 0, flags.includes('-BX'), `${options} block checksum`);
        assert.equal((flg & 0x08) !== 0, flags.includes('--content-size'), `${options} content size`);
        assert.equal((flg & 0x04) !== 0, !flags.includes('--no-frame-crc'), `${options} content checksum`);
        assert.equal((packed[5] >> 4) & 7, blockSize, `${options} block size`);
        assert.ok(decode(packed).equals(sample), options.join(' '));
      }
    });
  }
}

test('compression levels and odd block sizes the CLI offers', () => {
  for (const options of [
    ['-9'],
    ['-12'],
    ['--fast=5'],
    ['--favor-decSpeed'],
    ['-B32'],
    ['-B100000', '-BD'],
    ['-B4', '-BD', '-12'],
  ]) {
    assert.ok(decode(lz4(sample.subarray(0, 3 << 20), options)).equals(sample.subarray(0, 3 << 20)), options.join(' '));
  }
});

test('uncompressed blocks (incompressible data) in both block modes', () => {
  for (const options of [['-B4'], ['-B4', '-BD'], ['-B5', '-BX']]) {
    const packed = lz4(incompressible, options);
    const firstBlock = packed.readUInt32LE(7);
    assert.equal(firstBlock >>> 31, 1, 'the CLI stored the first block uncompressed');
    assert.ok(decode(packed).equals(incompressible), options.join(' '));
  }
});

test('long overlapping matches and small inputs', () => {
  for (const data of [repetitive, Buffer.alloc(0), Buffer.from([7]), Buffer.from('hello\n')]) {
    for (const options of [[], ['-B4', '-BD'], ['-12', '--content-size']]) {
      assert.ok(decode(lz4(data, options)).equals(data), `${data.length} bytes, ${options}`);
    }
  }
});

test('linked blocks need their history: the same frame marked independent is rejected', () => {
  const packed = lz4(sample.subarray(0, 1 << 20), ['-B4', '-BD']);
  const forged = Buffer.from(packed);
  forged[4] |= 0x20;
  forged[6] = (xxh32(forged.subarray(4, 6)) >>> 8) & 0xff;
  assertBad(forged, 'match offset out of range');
});

test('concatenated frames with different options, and skippable frames anywhere', () => {
  const a = lz4(sample.subarray(0, 200000), ['-B4', '-BD', '-BX']);
  const b = lz4(repetitive, ['--content-size', '--no-frame-crc']);
  const c = lz4(incompressible, []);
  const expected = Buffer.concat([sample.subarray(0, 200000), repetitive, incompressible]);
  assert.ok(decode(Buffer.concat([a, b, c])).equals(expected));
  const withSkips = Buffer.concat([skippable(0, 10), a, skippable(15, 0), b, skippable(7, 100000), c, skippable(1, 3)]);
  assert.ok(decode(withSkips, 5).equals(expected));
  assert.equal(decode(skippable(0, 5)).length, 0);
  assertBad(skippable(0, 10).subarray(0, 12), 'truncated', 'truncated skippable frame');
});

function skippable(nibble: number, size: number): Buffer {
  const frame = Buffer.alloc(8 + size, 0xee);
  frame.writeUInt32LE((0x184d2a50 | nibble) >>> 0, 0);
  frame.writeUInt32LE(size, 4);
  return frame;
}

/** A hand-made frame; the header checksum is computed unless given. */
function frame(flg: number, bd: number, body: Buffer, extra: Buffer = Buffer.alloc(0), hc?: number): Buffer {
  const descriptor = Buffer.concat([Buffer.from([flg, bd]), extra]);
  const checksum = hc ?? (xxh32(descriptor) >>> 8) & 0xff;
  return Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18]), descriptor, Buffer.from([checksum]), body]);
}

function block(data: Buffer, uncompressed = false): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32LE((data.length | (uncompressed ? 0x80000000 : 0)) >>> 0);
  return Buffer.concat([header, data]);
}

const endMark = Buffer.alloc(4);

test('hand-made frames: stored blocks, empty stored block, literal-only block', () => {
  const body = Buffer.concat([
    block(Buffer.from('stored '), true),
    block(Buffer.alloc(0), true),
    block(Buffer.from([0x50, ...Buffer.from('hello')])),
    endMark,
  ]);
  assert.equal(decode(frame(0x60, 0x40, body)).toString(), 'stored hello');
});

test('bad frame headers are rejected', () => {
  const body = Buffer.concat([block(Buffer.from('x'), true), endMark]);
  assertBad(frame(0x60, 0x40, body, undefined, 0), 'frame header checksum mismatch');
  assertBad(frame(0xa0, 0x40, body), 'unsupported frame version');
  assertBad(frame(0x62, 0x40, body), 'reserved bits');
  assertBad(frame(0x60, 0x41, body), 'reserved bits');
  assertBad(frame(0x60, 0xc0, body), 'reserved bits');
  assertBad(frame(0x60, 0x30, body), 'invalid block maximum size');
  assertBad(frame(0x61, 0x40, body, Buffer.from([1, 2, 3, 4])), 'dictionary');
  assertBad(lz4(Buffer.from('legacy'), ['-l']), 'legacy');
  assertBad(Buffer.from('not lz4 at all'), 'not an lz4 frame');
});

test('inconsistent blocks are rejected', () => {
  assertBad(frame(0x60, 0x40, Buffer.concat([block(Buffer.alloc(65537), true), endMark])), 'block larger');
  // A match before the start of the output.
  assertBad(frame(0x60, 0x40, Buffer.concat([block(Buffer.from([0x00, 0x01, 0x00, 0x00])), endMark])), 'match offset');
  // Offset 0.
  assertBad(
    frame(0x60, 0x40, Buffer.concat([block(Buffer.from([0x10, 0x61, 0x00, 0x00, 0x00])), endMark])),
    'match offset',
  );
  // 'a' then a 70000-byte match: more than the 64 KiB a -B4 block may hold.
  const lengthBytes = [...Buffer.alloc(Math.floor((70000 - 19) / 255), 255), (70000 - 19) % 255];
  const overflow = Buffer.from([0x1f, 0x61, 0x01, 0x00, ...lengthBytes, 0x00]);
  assertBad(frame(0x60, 0x40, Buffer.concat([block(overflow), endMark])), 'more than the frame allows');
  // The same block fits a -B5 frame.
  assert.equal(decode(frame(0x60, 0x50, Buffer.concat([block(overflow), endMark]))).length, 70001);
  // Literals running past the block end.
  assertBad(frame(0x60, 0x40, Buffer.concat([block(Buffer.from([0x50, 0x61])), endMark])), 'literals run past');
  // A block that stops inside a match offset.
  assertBad(frame(0x60, 0x40, Buffer.concat([block(Buffer.from([0x10, 0x61, 0x01])), endMark])), 'match offset');
});

test('checksums and content size are verified', () => {
  const data = sample.subarray(0, 300000);
  const withBlockChecksum = lz4(data, ['-B4', '-BX', '--no-frame-crc']);
  const flipped = Buffer.from(withBlockChecksum);
  flipped[flipped.length >> 1] ^= 0x01;
  assertBad(flipped, 'block checksum mismatch');

  const withContentChecksum = lz4(data, ['-B4']);
  const badChecksum = Buffer.from(withContentChecksum);
  badChecksum[badChecksum.length - 1] ^= 0x80;
  assertBad(badChecksum, 'content checksum mismatch');

  const withSize = lz4(data, ['--content-size']);
  const wrongSize = Buffer.from(withSize);
  wrongSize.writeBigUInt64LE(BigInt(data.length + 1), 6);
  wrongSize[14] = (xxh32(wrongSize.subarray(4, 14)) >>> 8) & 0xff;
  assertBad(wrongSize, 'content size mismatch');
});

test('every truncation of a frame is an error, and so is anything after the last frame', () => {
  const packed = lz4(repetitive.subarray(0, 150000), ['-B4', '-BD', '-BX', '--content-size']);
  for (let length = 0; length < packed.length; length += length < 40 ? 1 : 97) {
    assertBad(packed.subarray(0, length), /truncated/, `first ${length} bytes`);
  }
  assertBad(packed.subarray(0, packed.length - 1), 'truncated');
  assertBad(Buffer.concat([packed, Buffer.from([0])]), 'trailing data');
  assertBad(Buffer.concat([packed, Buffer.from('garbage!')]), 'trailing data');
  assertBad(Buffer.concat([packed, packed.subarray(0, 9)]), 'truncated');
});

test('through createDecompressor: byte-by-byte input and stream errors', async () => {
  const packed = lz4(repetitive.subarray(0, 20000), ['-B4', '-BD']);
  const output: Buffer[] = [];
  await pipeline(
    Readable.from([...packed].map((b) => Buffer.from([b]))),
    createDecompressor('lz4'),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output.push(chunk);
        callback();
      },
    }),
  );
  assert.ok(Buffer.concat(output).equals(repetitive.subarray(0, 20000)));
  const broken = createDecompressor('lz4');
  broken.end(packed.subarray(0, 100));
  await assert.rejects(
    (async () => {
      for await (const _ of broken);
    })(),
    (error: unknown) => isNarwhalError(error, 'bad-compression') && error.message === 'corrupt lz4 stream: truncated',
  );
});
