/**
 * An upload name is served recompressed from the NAR's chunks (src/serving/nar-downloads.ts): once
 * the delta pass has stored the NAR's older chunks as deltas, the `.nar.xz` a client uploaded still
 * decodes to the exact NAR, and the narinfo's `.nar.zst` too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { parseStored } from '../../../src/delta/stored-form.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { encodeDeltas } from '../../../src/maintenance/delta-encode.ts';
import { backfillSketches } from '../../../src/maintenance/sketch-backfill.ts';
import { encodeNixBase32 } from '../../../src/nix/base32.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { runTool } from '../../helpers/codec-tools.ts';
import { addPath, bodyOf, narHashOf, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';

let t: TempNarwhal;
let server: Server;
let base: string;
let push: Record<string, string>;

before(async () => {
  t = await tempNarwhal();
  server = createNarwhalServer(t.nw, { log: () => undefined });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
  push = { Authorization: `Bearer ${(await createToken(t.nw, { caches: ['main'], perms: ['push'] })).secret}` };
});

after(async () => {
  server.closeAllConnections();
  server.close();
  await t.close();
});

test('a .nar.xz upload name reads back exact after its chunks became deltas', async () => {
  const oldNar = versionNar(1000, 200_000);
  const xzBytes = await runTool(['xz', '-c', '-3'], Buffer.from(oldNar));
  const fileHash = encodeNixBase32(createHash('sha256').update(xzBytes).digest());
  const put = await fetch(`${base}/nar/${fileHash}.nar.xz`, { method: 'PUT', body: xzBytes, headers: push });
  assert.equal(put.status, 204);
  const oldHash = narHashOf(oldNar);
  const oldHashPart = await addPath(t.nw, 'main', { narHash: oldHash, narSize: oldNar.length });
  const newNar = versionNar(2000, 200_000);
  await addPath(t.nw, 'main', await ingestNar(t.nw, bodyOf(newNar), { compression: 'none' }));

  await backfillSketches(t.nw);
  const report = await encodeDeltas(t.nw);
  assert.ok(report.encoded > 0, 'the pass stores some of the old chunks as deltas');
  const old = (await t.nw.meta.getNar(oldHash))!;
  let deltas = 0;
  for (const { id } of chunkEntries(old.chunkTable)) {
    if (parseStored(await t.nw.chunks.get(id)).kind === 'delta') deltas++;
  }
  assert.ok(deltas > 0, 'the old NAR reads some chunks as deltas');

  const xz = await fetch(`${base}/nar/${fileHash}.nar.xz`, { headers: push });
  assert.equal(xz.status, 200);
  assertSameBytes(await runTool(['xz', '-dc'], Buffer.from(await xz.arrayBuffer())), oldNar, '.nar.xz');

  const narinfo = await (await fetch(`${base}/${oldHashPart}.narinfo`)).text();
  const url = /^URL: (\S+)$/m.exec(narinfo)![1];
  const fileSize = Number(/^FileSize: (\d+)$/m.exec(narinfo)![1]);
  const zst = Buffer.from(await (await fetch(`${base}/${url}`)).arrayBuffer());
  assert.equal(zst.length, fileSize, 'FileSize is the length served');
  assertSameBytes(unzstd(zst), oldNar, url);
});
