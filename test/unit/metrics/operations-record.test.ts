import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { runGc } from '../../../src/maintenance/gc.ts';
import { recompressChunks } from '../../../src/maintenance/recompress.ts';
import { bodyOf, realisticNar, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { sample } from '../../helpers/prometheus-text.ts';

test('ingest, GC and recompression record what they did in the context metrics', async () => {
  const t = await tempNarwhal();
  try {
    const nar = await realisticNar('metrics');
    const first = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    await ingestNar(t.nw, bodyOf(await realisticNar('metrics, another')), { compression: 'none' });
    // No path uses the NARs: GC with no grace deletes them all, and their chunks.
    const gc = await runGc(t.nw, { graceMs: 0, clockMarginMs: 0 });
    const recompressed = await recompressChunks(t.nw, { level: 3, workers: 1 });

    const text = await t.nw.metrics.text();
    const get = (name: string, labels: Record<string, string> = {}) => sample(text, name, labels);
    assert.equal(get('narwhal_nars_ingested_total', { outcome: 'new' }), 2);
    assert.equal(get('narwhal_nars_ingested_total', { outcome: 'deduplicated' }), 1);
    assert.equal(get('narwhal_nar_bytes_ingested_total', { outcome: 'deduplicated' }), nar.length);
    assert.equal(get('narwhal_chunks_ingested_total', { outcome: 'new' }) > first.chunkCount / 2, true);
    // The second upload of the same NAR wrote nothing; the third shares the binary's chunks.
    assert.ok(get('narwhal_chunks_ingested_total', { outcome: 'deduplicated' }) >= first.chunkCount - 1);
    assert.equal(get('narwhal_gc_runs_total', { outcome: 'done' }), 1);
    assert.equal(get('narwhal_gc_deleted_total', { kind: 'nars' }), gc.nars);
    assert.equal(get('narwhal_gc_deleted_total', { kind: 'chunks' }), gc.chunks);
    assert.ok(gc.chunks > 0);
    assert.equal(get('narwhal_recompress_runs_total', { outcome: recompressed.stopped ? 'stopped' : 'done' }), 1);
    assert.equal(get('narwhal_recompress_chunks_total', { action: 'recompressed' }), recompressed.chunks);
  } finally {
    await t.close();
  }
});
