import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { chunkSketch, SKETCH_SUPER_FEATURES } from '../../../src/delta/resemblance.ts';
import { backfillSketches } from '../../../src/maintenance/sketch-backfill.ts';
import { recompressChunks } from '../../../src/maintenance/recompress.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import { writeNar } from '../../../src/nix/nar-writer.ts';
import { damageChunk } from '../../helpers/damage.ts';
import { seededBytes } from '../../helpers/test-data.ts';
import { bodyOf, realisticNar, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

/** A store as made before ingest recorded sketches: the NARs' chunks, none with a sketch. */
async function storeWithoutSketches(
  t: TempNarwhal,
  nars: Uint8Array[],
): Promise<{ record: NarRecord; nar: Uint8Array }[]> {
  const stored = [];
  for (const nar of nars) {
    stored.push({ record: await ingestNar(t.nw, bodyOf(nar), { compression: 'none' }), nar });
  }
  const db = new DatabaseSync(join(t.dir, 'narwhal.sqlite'));
  try {
    db.exec('DELETE FROM chunk_features');
  } finally {
    db.close();
  }
  return stored;
}

/** Every chunk of the NAR (but `except`) has the sketch of its content. */
async function assertSketchesOf(t: TempNarwhal, record: NarRecord, nar: Uint8Array, except?: string): Promise<void> {
  for (const { id, start, end } of chunkEntries(record.chunkTable)) {
    if (hex(id) === except) continue;
    const found = await t.nw.meta.similarChunks(chunkSketch(nar.subarray(start, end)), 10_000);
    assert.ok(
      found.some((f) => hex(f.id) === hex(id) && f.matches === SKETCH_SUPER_FEATURES),
      `chunk ${hex(id)} has the sketch of its content`,
    );
  }
}

test('narwhal recompress first records the sketches of chunks stored without one', async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  try {
    const [{ record, nar }] = await storeWithoutSketches(t, [await realisticNar('old store')]);
    const chunks = (await t.nw.meta.stats()).chunks;
    assert.equal((await t.nw.meta.chunksWithoutSketch(new Uint8Array(0), 10_000)).length, chunks);
    const report = await recompressChunks(t.nw, { level: 3 });
    assert.equal(report.sketched, chunks);
    assert.equal(report.chunks, chunks, 'then recompresses as before');
    assert.deepEqual(await t.nw.meta.chunksWithoutSketch(new Uint8Array(0), 10), []);
    await assertSketchesOf(t, record, nar);
    assert.equal((await recompressChunks(t.nw, { level: 3 })).sketched, 0, 'nothing left to sketch');
  } finally {
    await t.close();
  }
});

test('the backfill yields between batches, resumes, and leaves a damaged chunk for verify', async () => {
  const t = await tempNarwhal();
  try {
    const nars = await storeWithoutSketches(t, [
      await realisticNar('first'),
      writeNar({ type: 'regular', contents: seededBytes(3_000_000, 19), executable: false }),
    ]);
    const chunks = (await t.nw.meta.stats()).chunks;
    assert.ok(chunks > 64, `more than one batch: ${chunks}`);
    const [damaged] = await t.nw.meta.chunksWithoutSketch(new Uint8Array(0), 1);
    await damageChunk(t.nw.chunks, damaged.id, 'delete');

    // An upload comes during the first batch: the run stops after it.
    let asked = 0;
    const first = await backfillSketches(t.nw, { shouldStop: () => asked++ > 0 });
    assert.deepEqual([first.stopped, first.finished], [true, false]);
    assert.equal(first.sketched + first.skipped, 64);
    assert.equal(first.skipped, 1);

    // The recompression run's lease lost after a batch: the run ends, not stopped by an upload.
    const ended = await backfillSketches(t.nw, { afterBatch: async () => false });
    assert.deepEqual([ended.stopped, ended.finished, ended.skipped], [false, false, 1]);

    const rest = await backfillSketches(t.nw);
    assert.deepEqual([rest.stopped, rest.finished], [false, true]);
    assert.equal(first.sketched + ended.sketched + rest.sketched, chunks - 1);
    assert.deepEqual(
      (await t.nw.meta.chunksWithoutSketch(new Uint8Array(0), 10)).map((c) => hex(c.id)),
      [hex(damaged.id)],
      'tried again by the next run',
    );
    for (const { record, nar } of nars) await assertSketchesOf(t, record, nar, hex(damaged.id));
  } finally {
    await t.close();
  }
});
