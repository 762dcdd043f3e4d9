/**
 * Chunks stored as deltas (src/delta/stored-form.ts), read through the whole server: every way a
 * NAR is read gives its exact bytes, FileSize stays the served length, damage to a base reaches
 * the NARs of its dependants, a re-push heals them, and GC keeps a base while a dependant lives.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { zstdDecompressSync } from 'node:zlib';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { encodeDelta, parseStored } from '../../../src/delta/stored-form.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { runGc } from '../../../src/maintenance/gc.ts';
import { verifyStore } from '../../../src/maintenance/verify.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import { serializeNarinfo } from '../../../src/nix/narinfo.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { damageChunk } from '../../helpers/damage.ts';
import { bodyOf, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

describe('chunks stored as deltas, read through the server', () => {
  let t: TempNarwhal;
  let server: Server;
  let base: string;
  let auth: Record<string, string>;
  const oldNar = versionNar(1000, 200_000);
  const newNar = versionNar(2000, 200_000);
  let oldRecord: NarRecord;
  let newRecord: NarRecord;
  const oldPath = 'a'.repeat(32);
  const newPath = 'b'.repeat(32);
  /** The old NAR's chunks now stored as deltas, each with its base (a chunk of the new NAR). */
  const deltas = new Map<string, Uint8Array>();

  const content = async (id: Uint8Array): Promise<Buffer> => zstdDecompressSync(await t.nw.chunks.get(id));
  const putPath = async (hashPart: string, nar: Uint8Array, record: NarRecord): Promise<void> => {
    const narinfo = serializeNarinfo({
      storePath: `/nix/store/${hashPart}-tool`,
      url: 'nar/x.nar',
      narHash: record.narHash,
      narSize: nar.length,
      references: [],
      sigs: [],
    });
    const put = await fetch(`${base}/${hashPart}.narinfo`, { method: 'PUT', body: narinfo, headers: auth });
    assert.equal(put.status, 204);
  };
  const fileSize = async (hashPart: string): Promise<number> =>
    Number(/^FileSize: (\d+)$/m.exec(await (await fetch(`${base}/${hashPart}.narinfo`)).text())![1]);

  before(async () => {
    t = await tempNarwhal();
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
    auth = {
      Authorization: `Bearer ${(await createToken(t.nw, { caches: ['main'], perms: ['push', 'delete'] })).secret}`,
    };
    const main = (await t.nw.meta.getCache('main'))!;
    oldRecord = await ingestNar(t.nw, bodyOf(oldNar), { compression: 'none', uploadedTo: main.id });
    newRecord = await ingestNar(t.nw, bodyOf(newNar), { compression: 'none', uploadedTo: main.id });
    await putPath(oldPath, oldNar, oldRecord);
    await putPath(newPath, newNar, newRecord);

    // Reverse deltas: each chunk only the old NAR has, against the new NAR's chunk at its place.
    const newIds = [...chunkEntries(newRecord.chunkTable)].map((entry) => entry.id);
    const newSet = new Set(newIds.map(hex));
    const recorded = [];
    for (const [i, entry] of [...chunkEntries(oldRecord.chunkTable)].entries()) {
      if (newSet.has(hex(entry.id)) || i >= newIds.length) continue;
      const baseId = newIds[i];
      const stored = encodeDelta(await content(entry.id), [{ id: baseId, content: await content(baseId) }], 9);
      const record = (await t.nw.meta.getChunk(entry.id))!;
      const storedSize = stored.length; // put may take the buffer over
      await t.nw.meta.reserveDeltaBases(entry.id, [baseId]);
      await t.nw.chunks.put(entry.id, stored);
      deltas.set(hex(entry.id), baseId);
      recorded.push({
        id: entry.id,
        oldStoredSize: record.storedSize,
        storedSize,
        bases: [baseId],
        depth: 1,
        level: 9,
      });
    }
    await t.nw.chunks.flush();
    assert.ok(deltas.size >= 5, `a few chunks differ between the versions (${deltas.size})`);
    assert.equal(await t.nw.meta.recordDeltas(recorded), deltas.size);
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('the re-encoded chunks are stored as deltas naming their base', async () => {
    for (const [idHex, baseId] of deltas) {
      const form = parseStored(await t.nw.chunks.get(Buffer.from(idHex, 'hex')));
      assert.equal(form.kind, 'delta');
      assert.deepEqual(form.kind === 'delta' && form.bases.map(hex), [hex(baseId)]);
    }
  });

  test('.nar.zst decodes with the zstd tool to the NAR, exactly FileSize bytes long', async () => {
    const frames = Buffer.from(await (await fetch(`${base}/nar/${oldRecord.narHash.slice(7)}.nar.zst`)).arrayBuffer());
    assert.equal(frames.length, await fileSize(oldPath));
    assertSameBytes(unzstd(frames), oldNar);
    const newest = Buffer.from(await (await fetch(`${base}/nar/${newRecord.narHash.slice(7)}.nar.zst`)).arrayBuffer());
    assert.equal(newest.length, await fileSize(newPath));
    assertSameBytes(unzstd(newest), newNar);
  });

  test('.nar whole and by Range', async () => {
    const url = `${base}/nar/${oldRecord.narHash.slice(7)}.nar`;
    assertSameBytes(Buffer.from(await (await fetch(url)).arrayBuffer()), oldNar);
    const ranged = await fetch(url, { headers: { Range: 'bytes=100000-1500000' } });
    assert.equal(ranged.status, 206);
    assertSameBytes(Buffer.from(await ranged.arrayBuffer()), oldNar.subarray(100_000, 1_500_001));
  });

  test('the casync view serves a delta chunk as a plain zstd frame of its content', async () => {
    for (const idHex of deltas.keys()) {
      const answer = await fetch(`${base}/castr/${idHex.slice(0, 4)}/${idHex}.cacnk`);
      assert.equal(answer.status, 200);
      const chunk = zstdDecompressSync(Buffer.from(await answer.arrayBuffer()));
      assert.equal(createHash('sha256').update(chunk).digest('hex'), idHex);
    }
  });

  test('verify finds every delta whole', async () => {
    const report = await verifyStore(t.nw);
    assert.deepEqual(
      [report.chunks.corrupt, report.chunks.missing, report.chunks.baseDamaged, report.nars.damaged],
      [0, 0, 0, 0],
    );
  });

  test('GC keeps a base while its dependant lives, though no path uses the base any more', async () => {
    await t.nw.meta.deletePaths((await t.nw.meta.getCache('main'))!.id, [newPath]);
    await runGc(t.nw, { graceMs: 0 });
    await runGc(t.nw, { graceMs: 0 });
    assert.equal(await t.nw.meta.getNar(newRecord.narHash), undefined, 'the new NAR is gone');
    for (const baseId of deltas.values()) assert.ok(await t.nw.meta.getChunk(baseId), 'its chunks that are bases stay');
    assertSameBytes(
      unzstd(Buffer.from(await (await fetch(`${base}/nar/${oldRecord.narHash.slice(7)}.nar.zst`)).arrayBuffer())),
      oldNar,
    );
  });

  test("verify is clean; a damaged base damages its dependants' NAR; a re-push heals it", async () => {
    const clean = await verifyStore(t.nw);
    assert.deepEqual(
      [clean.chunks.corrupt, clean.chunks.missing, clean.chunks.baseDamaged, clean.nars.damaged],
      [0, 0, 0, 0],
    );
    const [victimBase] = deltas.values();
    await damageChunk(t.nw.chunks, victimBase, 'flip');
    const damaged = await verifyStore(t.nw);
    assert.equal(damaged.chunks.corrupt, 1);
    assert.ok(damaged.chunks.baseDamaged >= 1, 'its dependant counts as damaged');
    assert.equal(damaged.nars.damaged, 1, 'the old NAR, which uses the dependant');
    assert.equal((await fetch(`${base}/${oldPath}.narinfo`)).status, 404);

    const repush = await fetch(`${base}/nar/${oldRecord.narHash.slice(7)}.nar`, {
      method: 'PUT',
      body: Buffer.from(oldNar),
      headers: auth,
    });
    assert.equal(repush.status, 204);
    assert.equal((await fetch(`${base}/${oldPath}.narinfo`)).status, 200);
    const healed = Buffer.from(await (await fetch(`${base}/nar/${oldRecord.narHash.slice(7)}.nar.zst`)).arrayBuffer());
    assert.equal(healed.length, await fileSize(oldPath));
    assertSameBytes(unzstd(healed), oldNar);
    for (const [idHex, baseId] of deltas) {
      const kind = parseStored(await t.nw.chunks.get(Buffer.from(idHex, 'hex'))).kind;
      assert.equal(
        kind,
        hex(baseId) === hex(victimBase) ? 'plain' : 'delta',
        'dependants of the bad base rewritten plain',
      );
    }
    const healedReport = await verifyStore(t.nw);
    assert.deepEqual([healedReport.chunks.baseDamaged, healedReport.nars.damaged], [0, 0]);
    // The damaged base now serves no NAR and no dependant: GC takes it.
    await runGc(t.nw, { graceMs: 0 });
    await runGc(t.nw, { graceMs: 0 });
    assert.equal(await t.nw.meta.getChunk(victimBase), undefined);
    assert.deepEqual((await verifyStore(t.nw)).chunks, {
      ok: (await t.nw.meta.stats()).chunks,
      missing: 0,
      corrupt: 0,
      baseDamaged: 0,
    });
  });
});
