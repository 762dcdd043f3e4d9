/**
 * The chunk-list format (src/push/chunk-list-body.ts) as both sides read and write it: entries of
 * each kind read back as written, in pieces of any size, also when written as a head then a frame; a delta entry is refused in a version-1
 * list and with a count of bases outside 1 to 8.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  type ChunkListEntry,
  chunkListEntryHead,
  encodeChunkListEntry,
  encodeChunkListHeader,
  MAX_SENT_BASES,
  readChunkListEntry,
  readChunkListHeader,
} from '../../../src/push/chunk-list-body.ts';
import { ExactReader } from '../../../src/runtime/exact-reader.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
/** An entry with its byte fields in hex, to compare. */
const shown = (entry: ChunkListEntry) => ({
  id: hex(entry.id),
  ...(entry.frame ? { frame: hex(entry.frame) } : {}),
  ...(entry.bases ? { bases: entry.bases.map(hex) } : {}),
});

/** A reader over `bytes` cut into pieces of `piece` bytes. */
const readerOf = (bytes: Uint8Array, piece = 7): ExactReader =>
  new ExactReader(
    (async function* () {
      for (let at = 0; at < bytes.length; at += piece) yield bytes.subarray(at, at + piece);
    })(),
  );

describe('chunk-list body', () => {
  test('named, plain and delta entries read back as written, after the header of their version', async () => {
    const ids = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const frame = randomBytes(100);
    const bases = [randomBytes(32), randomBytes(32)];
    for (const piece of [1, 7, 4096]) {
      const reader = readerOf(
        Buffer.concat([
          encodeChunkListHeader(2),
          encodeChunkListEntry(ids[0]),
          encodeChunkListEntry(ids[1], frame),
          encodeChunkListEntry(ids[2], frame, bases),
        ]),
        piece,
      );
      assert.equal(await readChunkListHeader(reader), 2);
      const read = async () => shown(await readChunkListEntry(reader, 1000, 2));
      assert.deepEqual(await read(), { id: hex(ids[0]) });
      assert.deepEqual(await read(), { id: hex(ids[1]), frame: hex(frame) });
      assert.deepEqual(await read(), { id: hex(ids[2]), frame: hex(frame), bases: bases.map(hex) });
      assert.ok(await reader.atEnd());
    }
    assert.equal(await readChunkListHeader(readerOf(encodeChunkListHeader(1))), 1);
  });

  test('an entry written as its head then its frame (the client, no copy) reads back as written', async () => {
    const ids = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const frames = [randomBytes(100), randomBytes(3)];
    const bases = [randomBytes(32)];
    const reader = readerOf(
      Buffer.concat([
        encodeChunkListHeader(2),
        chunkListEntryHead(ids[0]),
        chunkListEntryHead(ids[1], frames[0].length),
        frames[0],
        chunkListEntryHead(ids[2], frames[1].length, bases),
        frames[1],
      ]),
    );
    assert.equal(await readChunkListHeader(reader), 2);
    const read = async () => shown(await readChunkListEntry(reader, 1000, 2));
    assert.deepEqual(await read(), { id: hex(ids[0]) });
    assert.deepEqual(await read(), { id: hex(ids[1]), frame: hex(frames[0]) });
    assert.deepEqual(await read(), { id: hex(ids[2]), frame: hex(frames[1]), bases: bases.map(hex) });
    assert.ok(await reader.atEnd());
    assert.throws(() => chunkListEntryHead(ids[0], 10, []), RangeError);
  });

  test('a delta in a version-1 list, or naming no base or too many, is a clear 400', async () => {
    const id = randomBytes(32);
    const frame = randomBytes(10);
    const delta = encodeChunkListEntry(id, frame, [randomBytes(32)]);
    await assert.rejects(readChunkListEntry(readerOf(delta), 1000, 1), {
      code: 'bad-request',
      message: /kind is 0 or 1, not 2/,
    });
    for (const count of [0, MAX_SENT_BASES + 1]) {
      const entry = Buffer.concat([
        id,
        Buffer.from([2, count]),
        randomBytes(32 * count),
        Buffer.from([0, 0, 0, 10]),
        frame,
      ]);
      await assert.rejects(readChunkListEntry(readerOf(entry), 1000, 2), {
        code: 'bad-request',
        message: new RegExp(`1 to ${MAX_SENT_BASES} bases, not ${count}`),
      });
    }
    assert.throws(() => encodeChunkListEntry(id, frame, []), RangeError);
    await assert.rejects(readChunkListHeader(readerOf(Buffer.from('NWCL\x03'))), { message: /version 3/ });
  });
});
