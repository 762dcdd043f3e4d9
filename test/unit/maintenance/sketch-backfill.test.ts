import { test } from 'node:test';
import assert from 'node:assert/strict';
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

/** The NARs ingested: ingest records no sketch, the backfill does. */
async function ingestAll(t: TempNarwhal, nars: Uint8Array[]): Promise<{ record: NarRecord; nar: Uint8Array }[]> {
  const stored = [];
  for (const nar of nars) stored.push({ record: await ingestNar(t.nw, bodyOf(nar), { compression: 'none' }), nar });
  return stored;
}

/** The NAR's distinct chunks (hex id to content), as its chunk table cuts it. */
function distinctChunks(record: NarRecord, nar: Uint8Array): Map<string, Uint8Array> {
  const chunks = new Map<string, Uint8Array>();
  for (const { id, start, end } of chunkEntries(record.chunkTable)) chunks.set(hex(id), nar.subarray(start, end));
  return chunks;
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

test('narwhal recompress first records the sketch of every chunk, as chunkSketch computes it from the content', async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  try {
    const [{ record, nar }] = await ingestAll(t, [await realisticNar('old store')]);
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
    const nars = await ingestAll(t, [
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

test('two versions of a NAR with small edits find each other’s chunks by their sketches', async () => {
  const t = await tempNarwhal();
  try {
    const older = await realisticNar('version 1');
    const newer = older.slice();
    // A few bytes changed every 150 kB, inside the binary: most chunks of the newer NAR are new.
    for (let at = 200_000; at < newer.length - 1_000; at += 150_000) newer.fill(0x5a, at, at + 4);
    const [a, b] = await ingestAll(t, [older, newer]);
    assert.equal((await backfillSketches(t.nw)).skipped, 0);
    const oldChunks = distinctChunks(a.record, older);
    const newChunks = distinctChunks(b.record, newer);
    for (const [from, to] of [
      [newChunks, oldChunks],
      [oldChunks, newChunks],
    ]) {
      const edited = [...from].filter(([id]) => !to.has(id));
      assert.ok(edited.length >= 10, `edited chunks: ${edited.length}`);
      let found = 0;
      for (const [id, content] of edited) {
        const similar = await t.nw.meta.similarChunks(chunkSketch(content), 3);
        if (similar.some((s) => hex(s.id) !== id && to.has(hex(s.id)))) found++;
      }
      assert.ok(found >= edited.length * 0.8, `${found} of ${edited.length} edited chunks found their other version`);
    }
  } finally {
    await t.close();
  }
});
