import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Bzip2Decoder } from '../../../../src/compression/bzip2/bzip2-decoder.ts';
import { assertCorruptStream, decodeInRandomPieces } from '../../../helpers/pull-decoder.ts';
import { realBinary, seededBytes } from '../../../helpers/test-data.ts';

function bzip2(data: Uint8Array, options: string[] = []): Buffer {
  const result = spawnSync('bzip2', ['-c', ...options], { input: data, maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, `bzip2 failed: ${result.stderr}`);
  return result.stdout;
}

function decode(input: Uint8Array, options: { seed?: number; maxPiece?: number; readAhead?: number } = {}): Buffer {
  return decodeInRandomPieces(new Bzip2Decoder({ readAhead: options.readAhead }), input, {
    seed: options.seed ?? 1,
    maxPiece: options.maxPiece ?? 100000,
    maxOutput: 128 * 1024,
  });
}

function assertBad(input: Uint8Array, detail: string | RegExp, name = String(detail)): void {
  assertCorruptStream(() => decode(input), 'bzip2', detail, name);
}

const sample = realBinary(3 << 20);

/** Runs of every length from 1 to 600 (RLE1 writes runs of 4..255 as four bytes and a count). */
function runs(): Buffer {
  const parts: Buffer[] = [];
  for (let length = 1; length <= 600; length++) parts.push(Buffer.alloc(length, length % 3 === 0 ? 0x41 : length));
  for (const length of [3, 4, 5, 254, 255, 256, 258, 259, 260, 263, 1000, 100000])
    parts.push(Buffer.alloc(length, 0x42), Buffer.from([0x43]));
  return Buffer.concat(parts);
}

const allBytes = Buffer.from(Array.from({ length: 256 * 40 }, (_, i) => (i * 7919) & 0xff));
const cases: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from([0])],
  ['one symbol repeated', Buffer.alloc(5000, 0x61)],
  ['two symbols', Buffer.from('ab'.repeat(3000) + 'ba'.repeat(3000))],
  ['runs of every length', runs()],
  ['all byte values', allBytes],
  ['incompressible', seededBytes(400000, 11)],
  ['text', Buffer.from('(type directory entry (name lib node (type regular contents ...)))\n'.repeat(20000))],
];

test('every block size the CLI writes (-1 .. -9), on a real binary', () => {
  for (let level = 1; level <= 9; level++) {
    assert.ok(decode(bzip2(sample, [`-${level}`]), { seed: level }).equals(sample), `-${level}`);
  }
});

test('edge-case contents: runs, single symbols, all bytes, incompressible data, empty', () => {
  for (const [name, data] of cases) {
    for (const level of ['-1', '-9']) {
      assert.ok(decode(bzip2(data, [level])).equals(data), `${name} ${level}`);
    }
  }
});

test('blocks longer than the read-ahead are retried from their start until they fit', () => {
  for (const [name, data] of [['real binary', sample.subarray(0, 500000)] as const, ...cases]) {
    const packed = bzip2(data, ['-1']);
    assert.ok(decode(packed, { readAhead: 1, maxPiece: 3000, seed: 2 }).equals(data), name);
    assert.ok(decode(packed, { readAhead: 1, maxPiece: 17, seed: 3 }).equals(data), `${name}, tiny pieces`);
  }
});

test('concatenated streams (as pbzip2 writes, or cat a.bz2 b.bz2) of different block sizes', () => {
  const parts = [sample.subarray(0, 250000), cases[4][1], Buffer.alloc(0), cases[6][1]];
  const packed = Buffer.concat(parts.map((p, i) => bzip2(p, [`-${1 + 4 * (i % 3)}`])));
  assert.ok(decode(packed).equals(Buffer.concat(parts)));
});

test('a bomb is decoded piece by piece, never all at once', () => {
  const result = spawnSync('sh', ['-c', `head -c ${256 << 20} /dev/zero | bzip2 -9`], { maxBuffer: 1 << 20 });
  assert.equal(result.status, 0);
  const packed = Buffer.concat([result.stdout, result.stdout, result.stdout, result.stdout]);
  assert.ok(packed.length < 2000);
  const decoder = new Bzip2Decoder();
  decoder.write(packed);
  decoder.end();
  const zeros = Buffer.alloc(128 * 1024);
  for (let i = 0; i < 100; i++) {
    const piece = decoder.read();
    assert.ok(piece !== null && zeros.equals(piece));
  }
});

/** Bit offset of the last end-of-stream marker (0x177245385090) in a stream. */
function endOfStreamBit(packed: Buffer): number {
  for (let bit = (packed.length - 10) * 8; bit >= 0; bit--) {
    let value = 0n;
    for (let k = 0; k < 48; k++) {
      const b = bit + k;
      value = (value << 1n) | BigInt((packed[b >> 3] >> (7 - (b & 7))) & 1);
    }
    if (value === 0x177245385090n) return bit;
  }
  throw new Error('no end-of-stream marker');
}

function flipBit(packed: Buffer, bit: number): Buffer {
  const copy = Buffer.from(packed);
  copy[bit >> 3] ^= 0x80 >> (bit & 7);
  return copy;
}

test('corruption is detected: data, block CRC, stream CRC, header fields', () => {
  const packed = bzip2(sample.subarray(0, 2000000), ['-9']);
  const flipped = Buffer.from(packed);
  flipped[flipped.length >> 1] ^= 0x10;
  assertBad(flipped, /./, 'flipped byte in the middle');
  // Bytes 10..13 are the first block's CRC; bit 112 says "randomised".
  assertBad(flipBit(packed, 10 * 8 + 5), 'block checksum mismatch');
  assertBad(flipBit(packed, 14 * 8), 'randomised blocks are not supported');
  assertBad(flipBit(packed, endOfStreamBit(packed) + 48 + 3), 'stream checksum mismatch');
  assertBad(flipBit(packed, 4 * 8 + 1), 'bad block header');
  assertBad(Buffer.concat([Buffer.from('BZh0'), packed.subarray(4)]), 'invalid block size');
  assertBad(Buffer.from('BZx9 not bzip2'), 'not a bzip2 stream');
  assertBad(sample.subarray(0, 5000), 'not a bzip2 stream');
  for (let i = 0; i < 40; i++) {
    const corrupt = Buffer.from(packed);
    corrupt[Math.floor(((i + 0.5) / 40) * packed.length)] ^= 1 << (i % 8);
    assertBad(corrupt, /./, `bit flip #${i}`);
  }
});

test('truncation anywhere and data after the end are errors', () => {
  const packed = bzip2(cases[4][1], ['-1']);
  for (let length = 0; length < packed.length; length += length < 64 ? 1 : 211) {
    assertBad(packed.subarray(0, length), length === 0 ? 'empty input' : 'truncated', `first ${length} bytes`);
  }
  assertBad(packed.subarray(0, packed.length - 1), 'truncated');
  assertBad(Buffer.concat([packed, Buffer.from([0])]), 'trailing data');
  assertBad(Buffer.concat([packed, Buffer.from('BZh')]), 'trailing data');
  assertBad(Buffer.concat([packed, Buffer.from('garbage after the end')]), 'trailing data');
  assertBad(Buffer.concat([packed, Buffer.from('BZh9')]), 'truncated');
});
