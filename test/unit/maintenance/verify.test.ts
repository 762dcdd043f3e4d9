import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { readNarBytes, readStoredFrames } from '../../../src/serving/nar-reader.ts';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { damageRemains, verifyStore } from '../../../src/maintenance/verify.ts';
import { renderNarinfo } from '../../../src/serving/render-narinfo.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { serializeNarinfo } from '../../../src/nix/narinfo.ts';
import { NarwhalError } from '../../../src/errors.ts';
import { assertSameBytes, collect } from '../../helpers/bytes.ts';
import { addPath, bodyOf, realisticNar, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { LOCAL_STORES, damageChunk, misplaceChunk } from '../../helpers/damage.ts';
import type { PackChunkStore } from '../../../src/storage/pack-chunk-store.ts';
import { frameCrc } from '../../../src/storage/chunk-store.ts';

/** Flips bytes in the middle of a file, as bit rot would, keeping its size and time. */

for (const { name, storage } of LOCAL_STORES)
  test(`${name}: verify finds corrupt, truncated and deleted chunks, flags their NARs, repairs, and a re-push heals them`, async () => {
    const t = await tempNarwhal({}, storage);
    try {
      const store = t.nw.chunks;
      const main = (await t.nw.meta.getCache('main'))!;
      const narA = await realisticNar('A for verify');
      const narB = await realisticNar('B for verify, sharing the binary');
      const a = await ingestNar(t.nw, bodyOf(narA), { compression: 'none' });
      const b = await ingestNar(t.nw, bodyOf(narB), { compression: 'none' });
      const pathA = await addPath(t.nw, 'main', a);
      const pathB = await addPath(t.nw, 'main', b);

      const clean = await verifyStore(t.nw);
      assert.deepEqual(clean.chunks, { ok: (await t.nw.meta.stats()).chunks, missing: 0, corrupt: 0, baseDamaged: 0 });
      assert.deepEqual(clean.nars, { ok: 2, damaged: 0 });
      assert.equal(damageRemains(clean), false);

      const inB = new Set([...chunkEntries(b.chunkTable)].map((e) => Buffer.from(e.id).toString('hex')));
      const entriesA = [...chunkEntries(a.chunkTable)];
      const sharedA = entriesA.filter((e) => inB.has(Buffer.from(e.id).toString('hex')));
      const onlyA = entriesA.filter((e) => !inB.has(Buffer.from(e.id).toString('hex')));
      assert.ok(onlyA.length >= 1 && sharedA.length >= 3);
      const flipped = sharedA[1].id;
      const truncated = sharedA[2].id;
      const deleted = onlyA[0].id;
      await damageChunk(store, flipped, 'flip');
      await damageChunk(store, truncated, 'truncate');
      await damageChunk(store, deleted, 'delete');

      const found = await verifyStore(t.nw);
      assert.deepEqual(found.chunks, { ok: clean.chunks.ok - 3, missing: 1, corrupt: 2, baseDamaged: 0 });
      assert.deepEqual(found.nars, { ok: 0, damaged: 2 });
      assert.equal(found.marked, 2);
      assert.equal(damageRemains(found), true);
      assert.equal(await renderNarinfo(t.nw, main, pathA), undefined);
      assert.equal(await renderNarinfo(t.nw, main, pathB), undefined);
      // Nothing was deleted without --repair.
      assert.ok(await store.storedSize(flipped));

      const repaired = await verifyStore(t.nw, { repair: true });
      assert.equal(repaired.repaired, 2);
      assert.equal(repaired.marked, 0);
      assert.equal(await store.storedSize(flipped), undefined);
      assert.equal(await store.storedSize(truncated), undefined);
      assert.deepEqual((await verifyStore(t.nw)).chunks, {
        ok: clean.chunks.ok - 3,
        missing: 3,
        corrupt: 0,
        baseDamaged: 0,
      });

      // Uploading A again writes the three chunks back; B, which shares two of them, is whole again too.
      await ingestNar(t.nw, bodyOf(narA), { compression: 'none' });
      assert.ok(await renderNarinfo(t.nw, main, pathA));
      assert.ok(await renderNarinfo(t.nw, main, pathB));
      assertSameBytes(await collect(readNarBytes(t.nw, (await t.nw.meta.getNar(b.narHash))!)), Buffer.from(narB));
      const healed = await verifyStore(t.nw);
      assert.deepEqual(healed.nars, { ok: 2, damaged: 0 });
      assert.equal(damageRemains(healed), false);
    } finally {
      await t.close();
    }
  });

for (const { name, storage } of LOCAL_STORES)
  test(`${name}: a NAR flagged by verify for a chunk that comes back is unflagged by the next verify`, async () => {
    const t = await tempNarwhal({}, storage);
    try {
      const store = t.nw.chunks;
      const nar = await ingestNar(t.nw, bodyOf(await realisticNar('comes back')), { compression: 'none' });
      const victim = [...chunkEntries(nar.chunkTable)][4].id;
      const saved = await store.get(victim);
      await damageChunk(store, victim, 'delete');
      assert.equal((await verifyStore(t.nw)).marked, 1);
      await store.put(victim, saved);
      await store.flush();
      const again = await verifyStore(t.nw);
      assert.equal(again.unmarked, 1);
      assert.equal((await t.nw.meta.getNar(nar.narHash))!.damagedAt, null);
    } finally {
      await t.close();
    }
  });

for (const { name, storage } of LOCAL_STORES)
  test(`${name}: reading the frames of a NAR checks every chunk: a corrupt one ends the stream and flags the NAR`, async () => {
    const t = await tempNarwhal({}, storage);
    try {
      const record = await ingestNar(t.nw, bodyOf(await realisticNar('frames')), { compression: 'none' });
      const [victim, other] = [...chunkEntries(record.chunkTable)].slice(20, 22).map((entry) => entry.id);
      // The frame of another chunk: a valid zstd frame, the wrong content.
      await misplaceChunk(t.nw.chunks, victim, other);
      await assert.rejects(
        collect(readStoredFrames(t.nw, record)),
        (err: unknown) => err instanceof NarwhalError && err.code === 'chunk-corrupt',
      );
      assert.notEqual((await t.nw.meta.getNar(record.narHash))!.damagedAt, null);
    } finally {
      await t.close();
    }
  });

test('verify gives the frames of a pack index made before CRCs were recorded their CRC, except a damaged one', async () => {
  const t = await tempNarwhal({}, LOCAL_STORES.find((store) => store.name === 'pack store')!.storage);
  try {
    const record = await ingestNar(t.nw, bodyOf(await realisticNar('old index')), { compression: 'none' });
    const ids = [...chunkEntries(record.chunkTable)].map((entry) => entry.id);
    const store = t.nw.chunks as PackChunkStore;
    const db = new DatabaseSync(join(store.root, 'index.sqlite'));
    try {
      db.exec('UPDATE chunks SET crc = NULL');
    } finally {
      db.close();
    }
    const victim = ids[2];
    await damageChunk(store, victim, 'flip');
    assert.ok((await store.getFrames(ids)).every((frame) => frame.crc === undefined));
    assert.equal((await verifyStore(t.nw)).chunks.corrupt, 1);
    for (const { stored, crc } of await store.getFrames(ids.filter((id) => id !== victim)))
      assert.equal(crc, frameCrc(stored));
    assert.equal((await store.getFrames([victim]))[0].crc, undefined, 'a frame that failed its check gets no CRC');
  } finally {
    await t.close();
  }
});

test('over HTTP: a download that meets a corrupt chunk breaks off, the narinfo turns 404, a re-push heals', async () => {
  const t = await tempNarwhal();
  const server = createNarwhalServer(t.nw, { log: () => undefined });
  try {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
    const { secret } = await createToken(t.nw, { caches: ['main'], perms: ['push'] });
    const auth = { Authorization: `Bearer ${secret}` };
    const nar = await realisticNar('http damage');
    const main = (await t.nw.meta.getCache('main'))!;
    const hash = (await ingestNar(t.nw, bodyOf(nar), { compression: 'none', uploadedTo: main.id })).narHash.slice(
      'sha256:'.length,
    );
    const hashPart = 'd'.repeat(32);
    const narinfo = serializeNarinfo({
      storePath: `/nix/store/${hashPart}-damaged`,
      url: 'nar/x.nar',
      narHash: `sha256:${hash}`,
      narSize: nar.length,
      references: [],
      sigs: [],
    });
    assert.equal(
      (await fetch(`${base}/${hashPart}.narinfo`, { method: 'PUT', body: narinfo, headers: auth })).status,
      204,
    );
    assert.equal((await fetch(`${base}/${hashPart}.narinfo`)).status, 200);

    const store = t.nw.chunks;
    const record = (await t.nw.meta.getNar(`sha256:${hash}`))!;
    const entries = [...chunkEntries(record.chunkTable)];
    await damageChunk(store, entries[entries.length - 3].id, 'flip');

    // Status and headers went out before the bad chunk was reached: the connection is cut.
    const download = await fetch(`${base}/nar/${hash}.nar.zst`);
    assert.equal(download.status, 200);
    await assert.rejects(download.arrayBuffer());
    assert.equal((await fetch(`${base}/${hashPart}.narinfo`)).status, 404);
    // The upload name answers 404 as well, so a pushing Nix sends the NAR again.
    assert.equal((await fetch(`${base}/nar/${hash}.nar`, { method: 'HEAD', headers: auth })).status, 404);

    assert.equal(
      (await fetch(`${base}/nar/${hash}.nar`, { method: 'PUT', body: Buffer.from(nar), headers: auth })).status,
      204,
    );
    assert.equal((await fetch(`${base}/${hashPart}.narinfo`)).status, 200);
    const healed = await fetch(`${base}/nar/${hash}.nar.zst`);
    assert.equal(healed.status, 200);
    assertSameBytes(
      execFileSync('zstd', ['-d', '-c'], { input: Buffer.from(await healed.arrayBuffer()), maxBuffer: 1 << 30 }),
      Buffer.from(nar),
    );

    // A missing chunk is found before any byte is sent: 503, and the narinfo turns 404.
    await damageChunk(store, entries[1].id, 'delete');
    assert.equal((await fetch(`${base}/nar/${hash}.nar`)).status, 503);
    assert.equal((await fetch(`${base}/${hashPart}.narinfo`)).status, 404);
  } finally {
    server.closeAllConnections();
    server.close();
    await t.close();
  }
});
