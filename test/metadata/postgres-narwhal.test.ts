import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeNarwhal } from '../../src/context/narwhal.ts';
import { openNarwhal, DEFAULT_CACHE } from '../../src/tenancy/open-narwhal.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes } from '../../src/serving/nar-reader.ts';
import { renderNarinfo } from '../../src/serving/render-narinfo.ts';
import { runGc } from '../../src/maintenance/gc.ts';
import { parseNarinfo } from '../../src/nix/narinfo.ts';
import { addPath, bodyOf, narHashOf, realisticNar } from '../helpers/narwhal-fixtures.ts';
import { freshDatabase } from './postgres-server.ts';
import { collect } from '../helpers/bytes.ts';

test('a Narwhal on PostgreSQL ingests, serves narinfo and NAR, collects garbage, and two replicas share it', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-pg-cache-'));
  const storage = join(dir, 'castr');
  const nw = await openNarwhal({ dataDir: dir, database: db.url, storage });
  const replica = await openNarwhal({ dataDir: dir, database: db.url, storage });
  try {
    assert.equal(existsSync(join(dir, 'narwhal.sqlite')), false, 'no SQLite file is made');
    const nar = await realisticNar('pg');
    const record = await ingestNar(nw, bodyOf(nar), { compression: 'none' });
    assert.equal(record.narHash, narHashOf(nar));
    const hashPart = await addPath(nw, DEFAULT_CACHE, record);

    // The other replica sees the path and reads the NAR.
    const cache = (await replica.meta.getCache(DEFAULT_CACHE))!;
    const text = await renderNarinfo(replica, cache, hashPart);
    assert.ok(text, 'narinfo served');
    const info = parseNarinfo(text);
    assert.equal(info.narHash, record.narHash);
    assert.equal(info.narSize, nar.length);
    const opened = (await openNar(replica, record.narHash))!;
    assert.ok(Buffer.from(nar).equals(await collect(readNarBytes(replica, opened))));

    // Deleted path: GC on one replica takes the NAR and its chunks.
    assert.deepEqual((await replica.meta.deletePaths(cache.id, [hashPart])).deleted, [hashPart]);
    const before = await nw.meta.stats();
    assert.ok(before.chunks > 10);
    const report = await runGc(nw, { graceMs: 0, clockMarginMs: 0 });
    assert.equal(report.nars, 1);
    assert.equal(report.chunks, before.chunks);
    assert.equal(report.files, before.chunks, 'their files deleted');
    assert.deepEqual(await replica.meta.stats(), {
      paths: 0,
      nars: 0,
      narBytes: 0,
      chunks: 0,
      chunkBytes: 0,
      storedBytes: 0,
    });
  } finally {
    await closeNarwhal(replica);
    await closeNarwhal(nw);
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
});
