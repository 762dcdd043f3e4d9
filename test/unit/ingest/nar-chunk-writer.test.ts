import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { NarChunkWriter } from '../../../src/ingest/nar-chunk-writer.ts';
import type { NewChunk } from '../../../src/metadata/metadata-store.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';
import { tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';

const CHUNK_BYTES = 256 * 1024;

function chunks(count: number, seed: number): { chunk: NewChunk; data: Uint8Array }[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const data = new Uint8Array(CHUNK_BYTES);
    for (let i = 0; i < data.length; i += 4096) data.fill(Math.floor(random() * 256), i, i + 4096);
    const id = new Uint8Array(createHash('sha256').update(data).digest());
    return { chunk: { id, size: data.length, storedSize: 0 }, data };
  });
}

/** Counts the chunk store's flushes; while `fail` is set they throw it instead. */
function countFlushes(t: TempNarwhal, fail?: Error): { count: number; fail?: Error } {
  const counter: { count: number; fail?: Error } = { count: 0, fail };
  const flush = t.nw.chunks.flush.bind(t.nw.chunks);
  t.nw.chunks.flush = async () => {
    counter.count++;
    if (counter.fail) throw counter.fail;
    return flush();
  };
  return counter;
}

test('a long upload flushes the chunk store as it goes, and its chunks read back', async () => {
  const t = await tempNarwhal();
  try {
    const flushes = countFlushes(t);
    const writer = new NarChunkWriter(t.nw, { flushEveryBytes: 1024 * 1024 });
    const written = chunks(12, 1);
    for (const { chunk, data } of written) await writer.write(chunk, data);
    await writer.finish();
    assert.equal(flushes.count, 3, 'a flush for every MiB written');
    await t.nw.chunks.flush();
    for (const { chunk, data } of written) {
      assert.ok(chunk.written && chunk.storedSize > 0);
      assertSameBytes(unzstd(await t.nw.chunks.get(chunk.id)), data);
    }
  } finally {
    await t.close();
  }
});

test('an upload below the flush interval leaves flushing to its end', async () => {
  const t = await tempNarwhal();
  try {
    const flushes = countFlushes(t);
    const writer = new NarChunkWriter(t.nw);
    for (const { chunk, data } of chunks(12, 2)) await writer.write(chunk, data);
    await writer.finish();
    assert.equal(flushes.count, 0);
  } finally {
    await t.close();
  }
});

test('a flush that fails meanwhile fails the upload when it finishes', async () => {
  const t = await tempNarwhal();
  try {
    const flushes = countFlushes(t, new Error('no space left for the index'));
    const writer = new NarChunkWriter(t.nw, { flushEveryBytes: 1024 * 1024 });
    const written = chunks(6, 3);
    for (const { chunk, data } of written) await writer.write(chunk, data).catch(() => undefined);
    await assert.rejects(writer.finish(), /no space left for the index/);
    flushes.fail = undefined;
  } finally {
    await t.close();
  }
});
