import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createXzProcessDecompressor } from '../../../src/compression/xz-process.ts';
import { seededBytes } from '../../helpers/test-data.ts';

async function decode(input: Uint8Array, piece = 10_000): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0; i < input.length; i += piece) yield Buffer.from(input.subarray(i, i + piece));
      })(),
    ),
    createXzProcessDecompressor(),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        parts.push(chunk);
        done();
      },
    }),
  );
  return Buffer.concat(parts);
}

test('xz process: decodes what the xz tool wrote, concatenated streams included', async () => {
  const plain = Buffer.concat([seededBytes(3_000_000, 1), Buffer.alloc(2_000_000, 7)]);
  const packed = execFileSync('xz', ['-6', '-c'], { input: plain, maxBuffer: 64 * 1024 * 1024 });
  assert.ok((await decode(packed)).equals(plain));
  const twice = Buffer.concat([packed, packed]);
  assert.ok((await decode(twice, 4096)).equals(Buffer.concat([plain, plain])));
});

test('xz process: a corrupt or cut stream is an error, never a short clean end', async () => {
  const plain = seededBytes(1_000_000, 2);
  const packed = execFileSync('xz', ['-c'], { input: plain });
  const cut = packed.subarray(0, packed.length - 100);
  await assert.rejects(decode(cut), /corrupt xz stream/);
  const flipped = Buffer.from(packed);
  flipped[Math.floor(flipped.length / 2)] ^= 0xff;
  await assert.rejects(decode(flipped), /corrupt xz stream/);
  await assert.rejects(decode(Buffer.from('not xz at all')), /corrupt xz stream/);
});
