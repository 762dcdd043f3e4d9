import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NarwhalMetrics, type StoreFigures } from '../../../src/metrics/narwhal-metrics.ts';
import { promtoolCheck, sample } from '../../helpers/prometheus-text.ts';

const FIGURES: StoreFigures = { paths: 3, nars: 2, narBytes: 5000, chunks: 7, chunkBytes: 4000, storedBytes: 1500 };

test('what operations record is in the text, which promtool accepts', async () => {
  const metrics = new NarwhalMetrics();
  metrics.addProcessMetrics();
  metrics.watchStore(async () => FIGURES);
  metrics.recordRequest({ route: 'narinfo', method: 'GET', status: 200, seconds: 0.004, bytesIn: 0, bytesOut: 300 });
  metrics.recordRequest({ route: 'nar', method: 'PUT', status: 204, seconds: 0.2, bytesIn: 9000, bytesOut: 80 });
  // On a bucket's bound: counted in it (`le`, less than or equal).
  metrics.recordRequest({ route: 'narinfo', method: 'GET', status: 404, seconds: 0.005, bytesIn: 0, bytesOut: 100 });
  metrics.recordNarinfoLookup(true);
  metrics.recordNarinfoLookup(false);
  metrics.recordNarinfoLookup(false);
  metrics.recordIngest({
    narNew: true,
    narBytes: 9000,
    newChunks: 3,
    newChunkBytes: 6000,
    reusedChunks: 2,
    reusedChunkBytes: 3000,
  });
  metrics.recordIngest({
    narNew: false,
    narBytes: 9000,
    newChunks: 0,
    newChunkBytes: 0,
    reusedChunks: 5,
    reusedChunkBytes: 9000,
  });
  metrics.recordGc({ outcome: 'done', paths: 1, nars: 2, chunks: 4, files: 4, reclaimedBytes: 777 });
  metrics.recordGc({ outcome: 'skipped' });
  metrics.recordRecompression({ outcome: 'done', chunks: 10, rewritten: 6, bytesBefore: 1000, bytesAfter: 700 });
  metrics.recordError('bad-nar');

  const text = await metrics.text();
  assert.equal(await promtoolCheck(text), '');
  const get = (name: string, labels: Record<string, string> = {}) => sample(text, name, labels);
  assert.equal(get('narwhal_http_requests_total', { route: 'narinfo', method: 'GET', status: '200' }), 1);
  assert.equal(get('narwhal_http_request_duration_seconds_count', { route: 'nar', method: 'PUT' }), 1);
  assert.equal(get('narwhal_http_request_duration_seconds_bucket', { route: 'nar', method: 'PUT', le: '0.1' }), 0);
  assert.equal(get('narwhal_http_request_duration_seconds_bucket', { route: 'nar', method: 'PUT', le: '0.25' }), 1);
  assert.equal(
    get('narwhal_http_request_duration_seconds_bucket', { route: 'narinfo', method: 'GET', le: '0.0025' }),
    0,
  );
  assert.equal(
    get('narwhal_http_request_duration_seconds_bucket', { route: 'narinfo', method: 'GET', le: '0.005' }),
    2,
  );
  assert.equal(get('narwhal_http_request_duration_seconds_bucket', { route: 'narinfo', method: 'GET', le: '+Inf' }), 2);
  assert.ok(
    Math.abs(get('narwhal_http_request_duration_seconds_sum', { route: 'narinfo', method: 'GET' }) - 0.009) < 1e-12,
  );
  assert.equal(get('narwhal_http_requests_total', { route: 'narinfo', method: 'GET', status: '404' }), 1);
  assert.equal(get('narwhal_http_sent_bytes_total', { route: 'narinfo' }), 400);
  assert.equal(get('narwhal_http_received_bytes_total', { route: 'nar' }), 9000);
  assert.equal(get('narwhal_narinfo_lookups_total', { result: 'hit' }), 1);
  assert.equal(get('narwhal_narinfo_lookups_total', { result: 'miss' }), 2);
  assert.equal(get('narwhal_nars_ingested_total', { outcome: 'new' }), 1);
  assert.equal(get('narwhal_nars_ingested_total', { outcome: 'deduplicated' }), 1);
  assert.equal(get('narwhal_chunks_ingested_total', { outcome: 'new' }), 3);
  assert.equal(get('narwhal_chunks_ingested_total', { outcome: 'deduplicated' }), 7);
  assert.equal(get('narwhal_chunk_bytes_ingested_total', { outcome: 'deduplicated' }), 12000);
  assert.equal(get('narwhal_gc_runs_total', { outcome: 'done' }), 1);
  assert.equal(get('narwhal_gc_runs_total', { outcome: 'skipped' }), 1);
  assert.equal(get('narwhal_gc_deleted_total', { kind: 'chunks' }), 4);
  assert.equal(get('narwhal_gc_reclaimed_bytes_total'), 777);
  assert.equal(get('narwhal_recompress_chunks_total', { action: 'rewritten' }), 6);
  assert.equal(get('narwhal_recompress_bytes_total', { stage: 'after' }), 700);
  assert.equal(get('narwhal_errors_total', { kind: 'bad-nar' }), 1);
  assert.equal(get('narwhal_store_stored_bytes'), 1500);
  assert.equal(get('narwhal_store_nar_bytes'), 5000);
  assert.equal(get('narwhal_store_paths'), 3);
  assert.ok(get('process_cpu_seconds_total') > 0);
});

test("the store's figures are read once for scrapes close together, and again after a failure", async () => {
  const metrics = new NarwhalMetrics();
  let reads = 0;
  metrics.watchStore(async () => {
    reads++;
    return { ...FIGURES, storedBytes: 1000 * reads };
  });
  const first = await metrics.text();
  const second = await metrics.text();
  assert.equal(reads, 1);
  assert.equal(sample(first, 'narwhal_store_stored_bytes'), 1000);
  assert.equal(sample(second, 'narwhal_store_stored_bytes'), 1000);

  const failing = new NarwhalMetrics();
  let failingReads = 0;
  failing.watchStore(async () => {
    failingReads++;
    if (failingReads === 1) throw new Error('database gone');
    return FIGURES;
  });
  const during = await failing.text();
  assert.equal(sample(during, 'narwhal_store_nars'), 0);
  const afterwards = await failing.text();
  assert.equal(failingReads, 2);
  assert.equal(sample(afterwards, 'narwhal_store_nars'), 2);
  // The error counter comes before the gauges in the text, so the failure shows in the next scrape.
  assert.equal(sample(afterwards, 'narwhal_errors_total', { kind: 'unavailable' }), 1);
});
