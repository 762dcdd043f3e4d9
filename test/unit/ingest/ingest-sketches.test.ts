import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { chunkSketch, SKETCH_SUPER_FEATURES } from '../../../src/delta/resemblance.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import type { Narwhal } from '../../../src/context/narwhal.ts';
import { bodyOf, realisticNar, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

/** The NAR's distinct chunks (hex id to content), as its chunk table cuts it. */
function distinctChunks(record: NarRecord, nar: Uint8Array): Map<string, Uint8Array> {
  const chunks = new Map<string, Uint8Array>();
  for (const { id, start, end } of chunkEntries(record.chunkTable)) chunks.set(hex(id), nar.subarray(start, end));
  return chunks;
}

/** The recorded sketch of the chunk is `sketch` when looking it up finds the chunk itself on every super-feature. */
async function hasSketch(nw: Narwhal, id: string, sketch: Uint32Array): Promise<boolean> {
  const found = await nw.meta.similarChunks(sketch, 10_000);
  return found.some((f) => hex(f.id) === id && f.matches === SKETCH_SUPER_FEATURES);
}

test('ingest records the sketch of every chunk it writes, as chunkSketch computes it from the content', async () => {
  const t = await tempNarwhal();
  try {
    const nar = await realisticNar('sketched');
    // Pieces of odd sizes: chunks straddle the blocks the chunking thread gets.
    const record = await ingestNar(t.nw, bodyOf(nar, 100_003), { compression: 'none' });
    const chunks = distinctChunks(record, nar);
    assert.ok(chunks.size > 10);
    assert.deepEqual(await t.nw.meta.chunksWithoutSketch(new Uint8Array(0), 10), []);
    for (const [id, content] of chunks) assert.ok(await hasSketch(t.nw, id, chunkSketch(content)), id);
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
    const a = await ingestNar(t.nw, bodyOf(older), { compression: 'none' });
    const b = await ingestNar(t.nw, bodyOf(newer), { compression: 'none' });
    const oldChunks = distinctChunks(a, older);
    const newChunks = distinctChunks(b, newer);
    const edited = [...newChunks].filter(([id]) => !oldChunks.has(id));
    assert.ok(edited.length >= 10, `edited chunks: ${edited.length}`);
    let found = 0;
    for (const [id, content] of edited) {
      assert.ok(await hasSketch(t.nw, id, chunkSketch(content)), 'a chunk the second ingest wrote');
      const similar = await t.nw.meta.similarChunks(chunkSketch(content), 3);
      if (similar.some((s) => hex(s.id) !== id && oldChunks.has(hex(s.id)))) found++;
    }
    assert.ok(found >= edited.length * 0.8, `${found} of ${edited.length} edited chunks found their older version`);
    // And the other way: an old chunk that was edited finds its newer version.
    const replaced = [...oldChunks].filter(([id]) => !newChunks.has(id));
    let back = 0;
    for (const [id, content] of replaced) {
      const similar = await t.nw.meta.similarChunks(chunkSketch(content), 3);
      if (similar.some((s) => hex(s.id) !== id && newChunks.has(hex(s.id)))) back++;
    }
    assert.ok(back >= replaced.length * 0.8, `${back} of ${replaced.length} older chunks found their newer version`);
  } finally {
    await t.close();
  }
});
