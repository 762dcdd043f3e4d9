/**
 * The spool an upstream's NAR file arrives in: readers follow it at their own pace, and none sees a
 * file that is short or not the one the narinfo names end cleanly.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { NarSpool } from '../../../src/upstream/nar-spool.ts';

const sha256 = (data: Uint8Array): Uint8Array => createHash('sha256').update(data).digest();

async function readAll(reader: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of reader) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Reads until `length` bytes have come, then says how many came (the reader is left paused). */
async function readAtLeast(reader: Readable, length: number): Promise<Buffer> {
  let got = Buffer.alloc(0);
  while (got.length < length) {
    const part = reader.read() as Buffer | null;
    if (part) got = Buffer.concat([got, part]);
    else await new Promise((resolve) => reader.once('readable', resolve));
  }
  return got;
}

describe('NarSpool', () => {
  test('readers started before, during and after the upstream sends all get the whole file', async () => {
    const file = randomBytes(3 * 1024 * 1024 + 17);
    const spool = NarSpool.create();
    const upstream = new PassThrough();
    const early = readAll(spool.reader());
    const filled = spool.fill(upstream, { fileSize: file.length, fileHash: sha256(file) });
    upstream.write(file.subarray(0, 1_000_000));
    const middle = spool.reader();
    // A reader follows what has arrived: the first part, before the rest is sent.
    const first = await readAtLeast(middle, 999_999);
    assert.ok(first.equals(file.subarray(0, first.length)));
    upstream.end(file.subarray(1_000_000));
    await filled;
    const late = readAll(spool.reader());
    const rest = await readAll(middle);
    spool.close();
    assert.ok((await early).equals(file));
    assert.ok(Buffer.concat([first, rest]).equals(file));
    assert.ok((await late).equals(file));
  });

  test('the last byte waits for the check: a reader of a file cut short gets an error, not an end', async () => {
    const file = randomBytes(200_000);
    const spool = NarSpool.create();
    const upstream = new PassThrough();
    const reader = spool.reader();
    const filled = spool.fill(upstream, { fileSize: file.length });
    upstream.write(file.subarray(0, 100_000));
    const got = await readAtLeast(reader, 99_999);
    assert.equal(got.length, 99_999, 'all but the last byte that arrived');
    upstream.destroy(new Error('connection reset'));
    await assert.rejects(filled, /connection reset/);
    await assert.rejects(readAll(reader), /connection reset/);
    assert.equal(spool.failed, true);
    spool.close();
  });

  test('a file of the right size but another hash, or too long, fails every reader', async () => {
    const file = randomBytes(50_000);
    const wrong = NarSpool.create();
    const reader = wrong.reader();
    await assert.rejects(
      wrong.fill(PassThrough.from([randomBytes(50_000)]), { fileSize: file.length, fileHash: sha256(file) }),
      /FileHash/,
    );
    await assert.rejects(readAll(reader), /FileHash/);
    wrong.close();
    const long = NarSpool.create();
    await assert.rejects(long.fill(PassThrough.from([file, file]), { fileSize: file.length }), /FileSize/);
    long.close();
  });
});
