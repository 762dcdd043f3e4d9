/**
 * GC on S3, which has no portable conditional delete: an ingest that rewrites a chunk GC is
 * deleting must not commit a NAR whose chunk file the deletion then takes (src/maintenance/gc.ts).
 * Against a real S3 server (Ceph RGW, see s3-test-server.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeNarwhal, type Narwhal } from '../../src/context/narwhal.ts';
import { DEFAULT_CACHE, openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes } from '../../src/serving/nar-reader.ts';
import { runGc } from '../../src/maintenance/gc.ts';
import { isNarwhalError } from '../../src/errors.ts';
import type { ChunkStore } from '../../src/storage/chunk-store.ts';
import { hasConditionalDelete } from '../../src/storage/chunk-store-capabilities.ts';
import { assertSameBytes, collect } from '../helpers/bytes.ts';
import { addPath, bodyOf, realisticNar } from '../helpers/narwhal-fixtures.ts';
import { useS3TestBucket } from './s3-test-server.ts';

const NOW = { graceMs: 0, clockMarginMs: 0 };

const testS3 = useS3TestBucket();

/** The store, except that its first delete() waits until `release` is called. */
function pauseFirstDelete(store: ChunkStore): { store: ChunkStore; paused: Promise<void>; release: () => void } {
  let reached!: () => void;
  const paused = new Promise<void>((resolve) => (reached = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let first = true;
  const gated = new Proxy(store, {
    get(target, property) {
      if (property === 'delete') {
        return async (id: Uint8Array) => {
          if (first) {
            first = false;
            reached();
            await released;
          }
          await target.delete(id);
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: gated, paused, release };
}

async function readBack(nw: Narwhal, narHash: string): Promise<Buffer> {
  const opened = await openNar(nw, narHash);
  assert.ok(opened, `NAR ${narHash} opens`);
  return collect(readNarBytes(nw, opened));
}

test('S3: an ingest that rewrites chunks while GC deletes them is refused, never committed without its chunks', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-s3-gc-'));
  const prefix = 'gc-race';
  const nw = await openNarwhal({ dataDir: dir, storage: testS3.bucket.url(prefix) });
  try {
    assert.equal(
      hasConditionalDelete(nw.chunks),
      false,
      'S3 has no conditional delete: the noted path is the one tested',
    );
    const nar = await realisticNar('s3 gc race');
    const first = await ingestNar(nw, bodyOf(nar), { compression: 'none' });
    const chunkCount = (await nw.meta.stats()).chunks;
    assert.ok(chunkCount > 10);
    assert.equal((await testS3.bucket.keys(prefix)).length, chunkCount);

    // GC takes the unused NAR and its chunk records, then stops at the first chunk file it deletes.
    const gate = pauseFirstDelete(nw.chunks);
    const gc = runGc({ ...nw, chunks: gate.store }, NOW);
    await gate.paused;
    assert.equal(await nw.meta.getNar(first.narHash), undefined);

    // The same NAR again: its chunks have no record, so the ingest writes every file anew, and
    // GC then deletes them. Its commit must fail rather than record a NAR without its chunks.
    await assert.rejects(
      ingestNar(nw, bodyOf(nar), { compression: 'none' }),
      (err) => isNarwhalError(err, 'unavailable') && /upload it again/.test(err.message),
    );
    gate.release();
    const report = await gc;
    assert.equal(report.nars, 1);
    assert.equal(report.files, chunkCount);
    assert.deepEqual(
      await testS3.bucket.keys(prefix),
      [],
      'the files the refused ingest wrote were deleted: committing it would have lost them',
    );
    assert.equal(await nw.meta.getNar(first.narHash), undefined, 'nothing committed');

    // Pushing again after the deletion finished works, and the NAR reads back whole.
    const again = await ingestNar(nw, bodyOf(nar), { compression: 'none' });
    await addPath(nw, DEFAULT_CACHE, again);
    assertSameBytes(await readBack(nw, again.narHash), nar);

    // A later run forgets the finished deletions, deletes nothing in use, and the NAR still reads.
    const later = await runGc(nw, NOW);
    assert.equal(later.files, 0);
    assert.equal((await testS3.bucket.keys(prefix)).length, chunkCount);
    assertSameBytes(await readBack(nw, again.narHash), nar);
  } finally {
    await closeNarwhal(nw);
    await testS3.bucket.deleteUnder(prefix);
    await rm(dir, { recursive: true, force: true });
  }
});

test('S3: GC deletes orphan chunk files (no record) and spares recorded ones', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-s3-gc-'));
  const prefix = 'gc-orphans';
  const nw = await openNarwhal({ dataDir: dir, storage: testS3.bucket.url(prefix) });
  try {
    const kept = await ingestNar(nw, bodyOf(await realisticNar('kept')), { compression: 'none' });
    await addPath(nw, DEFAULT_CACHE, kept);
    const keptChunks = (await nw.meta.stats()).chunks;
    // An upload that failed after writing its chunks leaves files without records. The bytes
    // changed inside the binary make chunks of its own, written before the cut-off end fails it.
    const orphanNar = Uint8Array.from(await realisticNar('orphaned upload'));
    for (const at of [400_000, 1_200_000, 2_000_000]) orphanNar[at] ^= 0xff;
    await assert.rejects(
      ingestNar(nw, bodyOf(orphanNar.subarray(0, orphanNar.length - 1000)), { compression: 'none' }),
    );
    const files = (await testS3.bucket.keys(prefix)).length;
    assert.ok(files > keptChunks, 'the failed upload left chunk files');
    const report = await runGc(nw, NOW);
    assert.equal(report.orphanFiles, files - keptChunks);
    assert.equal((await testS3.bucket.keys(prefix)).length, keptChunks);
    assert.equal(report.chunks, 0);
  } finally {
    await closeNarwhal(nw);
    await testS3.bucket.deleteUnder(prefix);
    await rm(dir, { recursive: true, force: true });
  }
});
