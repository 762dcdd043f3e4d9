import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampleStorage, SAMPLE_KEEP_MS } from '../../../src/maintenance/storage-samples.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { writeNar } from '../../../src/nix/nar-writer.ts';
import { createCache } from '../../../src/tenancy/caches.ts';
import { addPath, bodyOf, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';

test("a sample records every cache's usage, at most once per interval, and drops samples past keeping", async () => {
  const t = await tempNarwhal();
  try {
    const { nw } = t;
    await createCache(nw, 'second');
    const nar = await ingestNar(nw, bodyOf(writeNar({ type: 'regular', contents: Buffer.from('sampled') })), {
      compression: 'none',
    });
    await addPath(nw, 'main', nar);
    const main = (await nw.meta.getCache('main'))!;
    const second = (await nw.meta.getCache('second'))!;
    const now = Date.now();
    await nw.meta.recordStorageSample(main.id, { at: now - SAMPLE_KEEP_MS - 1, paths: 0, narBytes: 0, storedBytes: 0 });

    assert.equal(await sampleStorage(nw, 60_000, now), true);
    // Another process (or this one) within the interval takes none.
    assert.equal(await sampleStorage(nw, 60_000, now + 1), false);
    const samples = await nw.meta.storageSamples(main.id, 0, 10);
    assert.deepEqual(samples, [{ at: now, paths: 1, narBytes: nar.narSize, storedBytes: samples[0].storedBytes }]);
    assert.ok(samples[0].storedBytes > 0);
    assert.deepEqual(
      (await nw.meta.storageSamples(second.id, 0, 10)).map((s) => [s.at, s.paths]),
      [[now, 0]],
    );
  } finally {
    await t.close();
  }
});
