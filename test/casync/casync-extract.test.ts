/**
 * The casync view against the real `casync`: `casync extract` fetches our index and chunk files
 * over HTTP and must rebuild the NAR byte for byte, chunks stored as deltas included. Fails (never
 * skips) without casync.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNarwhalServer } from '../../src/server/server.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { encodeDeltas } from '../../src/maintenance/delta-encode.ts';
import { backfillSketches } from '../../src/maintenance/sketch-backfill.ts';
import { run } from '../e2e/harness.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { addPath, bodyOf, realisticNar, tempNarwhal, type TempNarwhal } from '../helpers/narwhal-fixtures.ts';
import { versionNar } from '../helpers/test-data.ts';

let t: TempNarwhal;
let server: Server;
let base: string;

before(async () => {
  t = await tempNarwhal();
  server = createNarwhalServer(t.nw, { log: () => undefined });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
});

after(async () => {
  server.closeAllConnections();
  server.close();
  await t.close();
});

test('casync extract rebuilds a NAR from our caibx and castr view', async () => {
  for (const extra of ['first', 'second, sharing most chunks with the first']) {
    const nar = await realisticNar(extra);
    const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    await addPath(t.nw, 'main', record);
    const out = join(t.dir, `out-${record.id}.nar`);
    await run('casync', [
      'extract',
      `--store=${base}/castr`,
      `${base}/nar/${record.narHash.slice('sha256:'.length)}.caibx`,
      out,
    ]);
    assertSameBytes(await readFile(out), nar, `casync extract of ${extra}`);
  }
});

test('casync extract rebuilds a NAR whose chunks the delta pass stored as deltas', async () => {
  const versions = [versionNar(1000, 200_000), versionNar(2000, 200_000)];
  const records = [];
  for (const nar of versions) {
    const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    await addPath(t.nw, 'main', record);
    records.push(record);
  }
  await backfillSketches(t.nw);
  assert.ok((await encodeDeltas(t.nw)).encoded > 0, 'the older version has chunks stored as deltas');
  for (const [i, record] of records.entries()) {
    const out = join(t.dir, `delta-${i}.nar`);
    await run('casync', [
      'extract',
      `--store=${base}/castr`,
      `${base}/nar/${record.narHash.slice('sha256:'.length)}.caibx`,
      out,
    ]);
    assertSameBytes(await readFile(out), versions[i], `casync extract of version ${i + 1}`);
  }
});

test('casync extract fails when a chunk is gone rather than writing a wrong file', async () => {
  const nar = await realisticNar('damaged');
  const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
  await addPath(t.nw, 'main', record);
  const id = record.chunkTable.subarray(8 + 40 * 2, 40 * 3);
  await t.nw.chunks.delete(id);
  const out = join(t.dir, 'damaged.nar');
  await assert.rejects(
    run('casync', [
      'extract',
      `--store=${base}/castr`,
      `${base}/nar/${record.narHash.slice('sha256:'.length)}.caibx`,
      out,
    ]),
  );
});
