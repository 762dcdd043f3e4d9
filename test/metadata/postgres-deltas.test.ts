/**
 * Two replicas on one PostgreSQL database and one shared chunk store running the delta pass
 * (src/maintenance/delta-encode.ts) over the same chunks at the same moment, as when the
 * recompression lease of a stalled replica lapses and another takes it over: no chunk may be lost
 * or encoded twice into a broken chain, every record must match its file, and every NAR stays whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeNarwhal, type Narwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes, readStoredFrames } from '../../src/serving/nar-reader.ts';
import { backfillSketches } from '../../src/maintenance/sketch-backfill.ts';
import { encodeDeltas } from '../../src/maintenance/delta-encode.ts';
import { verifyStore } from '../../src/maintenance/verify.ts';
import { parseStored } from '../../src/delta/stored-form.ts';
import { MAX_DELTA_DEPTH } from '../../src/serving/chunk-content.ts';
import { assertSameBytes, collect } from '../helpers/bytes.ts';
import { unzstd } from '../helpers/zstd-cli.ts';
import { versionNar } from '../helpers/test-data.ts';
import { addPath, bodyOf, narHashOf } from '../helpers/narwhal-fixtures.ts';
import pg from 'pg';
import { freshDatabase } from './postgres-server.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

/** Every delta is stored as one, names in its file the bases its record has, and chains stay within bounds. */
async function assertChainsSound(nw: Narwhal, databaseUrl: string): Promise<number> {
  const chunks = await nw.meta.listChunks(new Uint8Array(0), 100_000);
  const recordedBases = await chunkBases(databaseUrl);
  const byId = new Map(chunks.map((c) => [hex(c.id), c]));
  assert.deepEqual(await nw.meta.pendingDeltas(new Uint8Array(0), 10), [], 'no reservation left behind');
  let deltas = 0;
  for (const chunk of chunks) {
    const stored = await nw.chunks.get(chunk.id);
    assert.equal(stored.length, chunk.storedSize, 'the record has the size of its file');
    const form = parseStored(stored);
    assert.equal(form.kind === 'delta' ? 'delta' : 'zstd', chunk.encoding, 'the record names the form of its file');
    if (form.kind !== 'delta') continue;
    deltas++;
    const { depth, height } = await nw.meta.deltaChain(chunk.id);
    assert.ok(depth + height <= MAX_DELTA_DEPTH, `a chain of ${depth + height} deltas`);
    assert.deepEqual(
      recordedBases.get(hex(chunk.id)),
      form.bases.map(hex),
      'the bases GC keeps are those its file needs',
    );
    for (const base of form.bases) {
      assert.ok(byId.has(hex(base)), 'the base has its record');
      assert.notEqual(hex(base), hex(chunk.id));
    }
  }
  return deltas;
}

/** The chunk_bases rows, read as a third client of the database: bases by chunk, in order. */
async function chunkBases(databaseUrl: string): Promise<Map<string, string[]>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ chunk_id: Buffer; base_id: Buffer }>(
      'SELECT chunk_id, base_id FROM chunk_bases ORDER BY chunk_id, position',
    );
    const bases = new Map<string, string[]>();
    for (const row of rows) bases.set(hex(row.chunk_id), [...(bases.get(hex(row.chunk_id)) ?? []), hex(row.base_id)]);
    return bases;
  } finally {
    await client.end();
  }
}

test('two replicas on PostgreSQL run the delta pass at once: no chunk lost or doubly encoded, every NAR whole', async (t) => {
  const db = await freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-pg-deltas-'));
  const storage = join(dir, 'castr');
  const a = await openNarwhal({ dataDir: join(dir, 'a'), database: db.url, storage, options: { zstdLevel: 1 } });
  const b = await openNarwhal({ dataDir: join(dir, 'b'), database: db.url, storage, options: { zstdLevel: 1 } });
  try {
    const nars: Uint8Array[] = [];
    const push = async (nw: Narwhal, seed: number): Promise<void> => {
      const nar = versionNar(seed, 150_000);
      nars.push(nar);
      await addPath(nw, 'main', await ingestNar(nw, bodyOf(nar), { compression: 'none' }));
    };
    let encoded = 0;
    const encodedBy = [0, 0];
    // Each round a newer version arrives through one replica or the other, then both passes run at once.
    for (const [round, seeds] of [[100, 200, 300], [400], [500]].entries()) {
      for (const [i, seed] of seeds.entries()) await push(i % 2 === 0 ? a : b, seed);
      await backfillSketches(a);
      const before = await assertChainsSound(a, db.url);
      const reports = await Promise.all([encodeDeltas(a), encodeDeltas(b)]);
      const after = await assertChainsSound(b, db.url);
      t.diagnostic(`round ${round}: encoded ${reports[0].encoded} + ${reports[1].encoded}, ${after} deltas`);
      assert.equal(reports[0].encoded + reports[1].encoded, after - before, 'each chunk encoded by one pass only');
      encodedBy[0] += reports[0].encoded;
      encodedBy[1] += reports[1].encoded;
      encoded += after - before;
    }
    assert.ok(encoded > 0, 'chunks are stored as deltas');
    // Which pass takes which batch is up to the scheduler: on a loaded machine one may take them all.
    t.diagnostic(`encoded by each pass: ${encodedBy.join(' + ')}`);
    for (const nw of [a, b]) {
      const report = await verifyStore(nw);
      assert.deepEqual(
        [report.chunks.missing, report.chunks.corrupt, report.chunks.baseDamaged, report.nars.damaged],
        [0, 0, 0, 0],
      );
      for (const nar of nars) {
        const opened = await openNar(nw, narHashOf(nar));
        assert.ok(opened);
        assertSameBytes(await collect(readNarBytes(nw, opened)), nar);
        const frames = await collect(readStoredFrames(nw, opened));
        assert.equal(frames.length, opened.storedSize);
        assertSameBytes(unzstd(frames), nar);
      }
    }
  } finally {
    await closeNarwhal(b);
    await closeNarwhal(a);
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
});
