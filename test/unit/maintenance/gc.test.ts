import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { readdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { readNarBytes } from '../../../src/serving/nar-reader.ts';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { ABANDONED_FILE_UPLOAD_MS, describeGc, runGc } from '../../../src/maintenance/gc.ts';
import { getCacheFile, putCacheFile, readCacheFile } from '../../../src/tenancy/cache-files.ts';
import { scheduleGc } from '../../../src/maintenance/gc-scheduler.ts';
import { HOLD_STALE_MS } from '../../../src/context/ingest-holds.ts';
import { noteNarAccess } from '../../../src/serving/access-times.ts';
import { configureCache, createCache, destroyCache } from '../../../src/tenancy/caches.ts';
import { deletePaths, pinPath } from '../../../src/tenancy/paths.ts';
import { renderNarinfo } from '../../../src/serving/render-narinfo.ts';
import { NarwhalError } from '../../../src/errors.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import type { Narwhal } from '../../../src/context/narwhal.ts';
import type { LocalChunkStore } from '../../../src/storage/local-chunk-store.ts';
import { PackChunkStore } from '../../../src/storage/pack-chunk-store.ts';
import type { ChunkStore } from '../../../src/storage/chunk-store.ts';
import { assertSameBytes, collect } from '../../helpers/bytes.ts';
import {
  addPath,
  bodyOf,
  pausedBody,
  randomHashPart,
  realisticNar,
  tempNarwhal,
  type TempNarwhal,
} from '../../helpers/narwhal-fixtures.ts';

const DAY = 86_400_000;
/** Collect at once: no grace, and files count as old as soon as they are written. */
const NOW = { graceMs: 0, clockMarginMs: 0 };

async function push(nw: Narwhal, nar: Uint8Array): Promise<NarRecord> {
  return ingestNar(nw, bodyOf(nar), { compression: 'none' });
}

/** A path of `cacheName` using the NAR, with references (hash parts of paths already there). */
function addPathWithRefs(nw: Narwhal, cacheName: string, nar: NarRecord, refs: string[], hashPart = randomHashPart()) {
  return addPath(nw, cacheName, nar, hashPart, refs);
}

async function storedFiles(t: TempNarwhal): Promise<number> {
  let n = 0;
  for await (const _ of t.nw.chunks.list()) n++;
  return n;
}

/** The figures `narwhal stats` prints, for a fresh data dir where only `nars` were pushed, each with one path. */
async function freshStats(nars: Uint8Array[]): Promise<unknown> {
  const fresh = await tempNarwhal();
  try {
    for (const nar of nars) await addPath(fresh.nw, 'main', await push(fresh.nw, nar));
    return await fresh.nw.meta.stats();
  } finally {
    await fresh.close();
  }
}

test('after a path is deleted and GC runs, stats equal a fresh push of the survivors, and the survivor reads back', async () => {
  const t = await tempNarwhal();
  try {
    const narA = await realisticNar('A: only in the first');
    const narB = await realisticNar('B: shares the binary with A');
    const a = await push(t.nw, narA);
    const b = await push(t.nw, narB);
    const pathA = await addPath(t.nw, 'main', a);
    await addPath(t.nw, 'main', b);
    const shared = [...chunkEntries(a.chunkTable)].filter(({ id }) =>
      [...chunkEntries(b.chunkTable)].some((e) => Buffer.compare(e.id, id) === 0),
    );
    assert.ok(shared.length > 10, 'A and B share chunks');

    await deletePaths(t.nw, 'main', [pathA]);
    const report = await runGc(t.nw, NOW);
    assert.equal(report.nars, 1);
    assert.equal(report.narBytes, narA.length);
    assert.ok(report.chunks >= 1 && report.chunks < 5, `chunks deleted: ${report.chunks}`);
    assert.equal(report.files, report.chunks);

    const expected = await freshStats([narB]);
    assert.deepEqual(await t.nw.meta.stats(), expected);
    assert.equal(await storedFiles(t), (await t.nw.meta.stats()).chunks);
    assertSameBytes(await collect(readNarBytes(t.nw, (await t.nw.meta.getNar(b.narHash))!)), Buffer.from(narB));
    // A second run finds nothing more.
    assert.deepEqual(
      { ...(await runGc(t.nw, NOW)) },
      {
        paths: 0,
        nars: 0,
        narBytes: 0,
        chunks: 0,
        chunkBytes: 0,
        storedBytes: 0,
        files: 0,
        fileBytes: 0,
        orphanFiles: 0,
        leftoverFiles: 0,
        compactedPacks: 0,
        reclaimedBytes: 0,
        abandonedFileUploads: 0,
        abandonedFileBytes: 0,
      },
    );
  } finally {
    await t.close();
  }
});

test('shared chunks survive when one cache drops its paths', async () => {
  const t = await tempNarwhal();
  try {
    await createCache(t.nw, 'x');
    await createCache(t.nw, 'y');
    const narShared = await realisticNar('in both caches');
    const narOnlyX = await realisticNar('only in x, sharing the binary');
    const shared = await push(t.nw, narShared);
    const onlyX = await push(t.nw, narOnlyX);
    await addPath(t.nw, 'x', shared);
    await addPath(t.nw, 'x', onlyX);
    await addPath(t.nw, 'y', shared);

    await destroyCache(t.nw, 'x');
    const report = await runGc(t.nw, NOW);
    assert.equal(report.nars, 1);

    const y = (await t.nw.meta.getCache('y'))!;
    const nar = (await t.nw.meta.getNar(shared.narHash))!;
    assert.ok(await t.nw.meta.cacheHasNar(y.id, nar.id));
    assertSameBytes(await collect(readNarBytes(t.nw, nar)), Buffer.from(narShared));
    assert.equal(await t.nw.meta.getNar(onlyX.narHash), undefined);
    assert.deepEqual(await t.nw.meta.stats(), await freshStats([narShared]));
  } finally {
    await t.close();
  }
});

test('retention drops paths unused for longer, except pinned paths and their closures and recently served ones', async () => {
  const t = await tempNarwhal();
  try {
    await configureCache(t.nw, 'main', { retention: 1 * 86_400 });
    const cache = (await t.nw.meta.getCache('main'))!;
    const nars = await Promise.all(['dep', 'top', 'other', 'served'].map((name) => realisticNar(`retention ${name}`)));
    const records: NarRecord[] = [];
    for (const nar of nars) records.push(await push(t.nw, nar));
    const depPath = await addPathWithRefs(t.nw, 'main', records[0], []);
    const topPath = await addPathWithRefs(t.nw, 'main', records[1], [depPath]);
    const otherPath = await addPathWithRefs(t.nw, 'main', records[2], []);
    const servedPath = await addPathWithRefs(t.nw, 'main', records[3], []);
    await pinPath(t.nw, 'main', topPath, true);

    // Everything was last used two days ago; then the narinfo of one path is served.
    for (const hashPart of [depPath, topPath, otherPath, servedPath])
      await t.nw.meta.recordPathAccess(cache.id, hashPart, Date.now() - 2 * DAY, Infinity);
    assert.ok(await renderNarinfo(t.nw, cache, servedPath));
    assert.ok((await t.nw.meta.getPath(cache.id, servedPath))!.lastAccess > Date.now() - 60_000);

    const report = await runGc(t.nw, NOW);
    assert.equal(report.paths, 1);
    const left = new Set((await t.nw.meta.listPaths(cache.id)).map((p) => p.hashPart));
    assert.deepEqual(left, new Set([depPath, topPath, servedPath]));
    assert.equal(await t.nw.meta.getNar(records[2].narHash), undefined);
    assert.deepEqual(await t.nw.meta.stats(), await freshStats([nars[0], nars[1], nars[3]]));

    // Retention 0 keeps everything, however old.
    await configureCache(t.nw, 'main', { retention: 0 });
    assert.equal((await runGc(t.nw, { ...NOW, now: Date.now() + 365 * DAY })).paths, 0);
    // Unpinned, the closure expires as a whole once its time has come.
    await configureCache(t.nw, 'main', { retention: 86_400 });
    await pinPath(t.nw, 'main', topPath, false);
    assert.equal((await runGc(t.nw, { ...NOW, now: Date.now() + 2 * DAY })).paths, 3);
    assert.deepEqual(await t.nw.meta.stats(), {
      paths: 0,
      nars: 0,
      narBytes: 0,
      chunks: 0,
      chunkBytes: 0,
      storedBytes: 0,
    });
    assert.equal(await storedFiles(t), 0);
  } finally {
    await t.close();
  }
});

test('nothing is deleted before its grace period, and a NAR waiting for its narinfo survives', async () => {
  const t = await tempNarwhal();
  try {
    const a = await push(t.nw, await realisticNar('grace'));
    const pending = await push(t.nw, await realisticNar('narinfo not uploaded yet'));
    await deletePaths(t.nw, 'main', [await addPath(t.nw, 'main', a)]);
    const before = await t.nw.meta.stats();
    const report = await runGc(t.nw, { graceMs: 3_600_000 });
    assert.equal(report.nars + report.chunks + report.files, 0);
    assert.deepEqual(await t.nw.meta.stats(), before);
    // The narinfo arrives: the NAR is in use again and outlives any later GC.
    await addPath(t.nw, 'main', pending);
    assert.equal((await runGc(t.nw, NOW)).nars, 1);
    assert.ok(await t.nw.meta.getNar(pending.narHash));
    assert.equal(await t.nw.meta.getNar(a.narHash), undefined);
  } finally {
    await t.close();
  }
});

test('a path is not deleted while another path refers to it, and a narinfo naming a deleted NAR is refused', async () => {
  const t = await tempNarwhal();
  try {
    const dep = await push(t.nw, await realisticNar('dep'));
    const top = await push(t.nw, await realisticNar('top'));
    const depPath = await addPathWithRefs(t.nw, 'main', dep, []);
    const topPath = await addPathWithRefs(t.nw, 'main', top, [depPath]);
    await assert.rejects(
      deletePaths(t.nw, 'main', [depPath]),
      (err: unknown) => err instanceof NarwhalError && err.code === 'conflict' && err.message.includes(topPath),
    );
    assert.deepEqual((await deletePaths(t.nw, 'main', [`/nix/store/${depPath}-fixture`, topPath])).length, 2);
    await assert.rejects(
      deletePaths(t.nw, 'main', [depPath]),
      (err: unknown) => err instanceof NarwhalError && err.code === 'not-found',
    );

    await runGc(t.nw, NOW);
    const cache = (await t.nw.meta.getCache('main'))!;
    // GC deleted the NAR between a narinfo's checks and its insert: the insert is refused.
    assert.equal(
      await t.nw.meta.putPath({
        cacheId: cache.id,
        hashPart: randomHashPart(),
        storePath: '/nix/store/x',
        narId: dep.id,
        references: [],
        deriver: null,
        system: null,
        sigs: [],
        ca: null,
      }),
      'no-nar',
    );
    await assert.rejects(
      addPath(t.nw, 'main', dep),
      (err: unknown) => err instanceof NarwhalError && err.code === 'missing-reference',
    );
  } finally {
    await t.close();
  }
});

test('castr store: chunk files without a record go once older than the cutoff; temporary leftovers too', async () => {
  const t = await tempNarwhal({}, (dir) => join(dir, 'castr'));
  try {
    const store = t.nw.chunks as LocalChunkStore;
    const oldId = Buffer.alloc(32, 0xab);
    const newId = Buffer.alloc(32, 0xcd);
    await store.put(oldId, Buffer.from('orphan of a failed upload'));
    await store.put(newId, Buffer.from('being written by an upload right now'));
    const old = new Date(Date.now() - 2 * 3_600_000);
    await utimes(store.path(oldId), old, old);
    const leftover = `${store.path(oldId)}.123456.tmp`;
    await writeFile(leftover, 'half a chunk');
    await utimes(leftover, old, old);

    const report = await runGc(t.nw, { graceMs: 3_600_000 });
    assert.equal(report.orphanFiles, 1);
    assert.equal(report.leftoverFiles, 1);
    assert.equal(await store.storedSize(oldId), undefined);
    assert.ok(await store.storedSize(newId));
    assert.deepEqual(await readdir(dirname(store.path(oldId))), []);
  } finally {
    await t.close();
  }
});

test('pack store: chunks without a record go, unsealed packs of a crashed writer go, and compaction gives their space back', async () => {
  const t = await tempNarwhal();
  try {
    const store = t.nw.chunks as PackChunkStore;
    const orphanId = Buffer.alloc(32, 0xab);
    const kept = await realisticNar('kept');
    const keptNar = await push(t.nw, kept);
    await addPath(t.nw, 'main', keptNar);
    await store.put(orphanId, Buffer.alloc(300_000, 1)); // a chunk of a failed upload: no record
    await store.flush();
    const crashed = new PackChunkStore(store.root);
    await crashed.put(Buffer.alloc(32, 0xcd), Buffer.from('written by a process killed before its flush'));
    const packsBefore = (await readdir(store.packDir)).length;

    const spared = await runGc(t.nw, { graceMs: 3_600_000 });
    assert.equal(
      spared.orphanFiles + spared.leftoverFiles + spared.compactedPacks,
      0,
      'nothing goes before the grace period',
    );
    // Unsealed packs go once idle for long (pack-format.ts, PACK_IDLE_LIMIT_MS): this one was, say, an hour ago.
    const unsealed = (await readdir(store.packDir)).sort().at(-1)!;
    const long = new Date(Date.now() - 3_600_000);
    await utimes(join(store.packDir, unsealed), long, long);
    const report = await runGc(t.nw, NOW);
    assert.equal(report.orphanFiles, 1);
    assert.equal(report.leftoverFiles, 1);
    assert.ok(report.compactedPacks >= 1 && report.reclaimedBytes >= 300_000, JSON.stringify(report));
    assert.equal(await store.storedSize(orphanId), undefined);
    assert.ok((await readdir(store.packDir)).length < packsBefore);
    assertSameBytes(await collect(readNarBytes(t.nw, keptNar)), Buffer.from(kept));
    assert.deepEqual(await t.nw.meta.stats(), await freshStats([kept]));
    await crashed.close().catch(() => undefined);
  } finally {
    await t.close();
  }
});

test('GC while an upload runs spares the chunks it reuses: their NAR stays until the upload is done', async () => {
  const t = await tempNarwhal();
  try {
    const narA = await realisticNar('A, deleted while C is uploaded');
    const narC = await realisticNar('C, reuses most chunks of A');
    const a = await push(t.nw, narA);
    const pathA = await addPath(t.nw, 'main', a);
    let resume!: () => void;
    const uploading = ingestNar(t.nw, pausedBody(narC, narC.length - 200_000, new Promise((r) => (resume = r))), {
      compression: 'none',
    });
    await delay(300); // let the first part be chunked (its chunks found in the store, not written)

    await deletePaths(t.nw, 'main', [pathA]);
    const during = await runGc(t.nw, NOW);
    assert.equal(during.nars + during.chunks + during.files, 0, 'nothing A had goes while C may rely on it');

    resume();
    const c = await uploading;
    await addPath(t.nw, 'main', c);
    const after = await runGc(t.nw, NOW);
    assert.equal(after.nars, 1);
    assertSameBytes(await collect(readNarBytes(t.nw, c)), Buffer.from(narC));
    assert.deepEqual(await t.nw.meta.stats(), await freshStats([narC]));
  } finally {
    await t.close();
  }
});

test('GC while an upload runs spares the chunk files it writes, even when GC deletes their old records', async () => {
  const t = await tempNarwhal();
  try {
    const narA = await realisticNar('A, gone before C starts');
    const narC = await realisticNar('C, has the same binary');
    const a = await push(t.nw, narA);
    await deletePaths(t.nw, 'main', [await addPath(t.nw, 'main', a)]);
    // A's NAR is deleted and its chunks noted unused, but not deleted yet.
    await t.nw.meta.markUnreferencedNars(Date.now());
    assert.equal((await t.nw.meta.deleteUnreferencedNars(Date.now(), Date.now(), 10)).nars, 1);
    const marked = Date.now();
    await delay(100);

    // C finds those chunks noted unused, so it writes them again rather than reusing them.
    const store = t.nw.chunks;
    const firstChunks = [...chunkEntries(a.chunkTable)].slice(0, 10);
    let resume!: () => void;
    const uploading = ingestNar(t.nw, pausedBody(narC, narC.length - 200_000, new Promise((r) => (resume = r))), {
      compression: 'none',
    });
    const rewritten = async (): Promise<boolean> => {
      for (const { id } of firstChunks) {
        const writtenAt = await modifiedAt(store, id);
        if (writtenAt === undefined || writtenAt <= marked) return false;
      }
      return true;
    };
    while (!(await rewritten())) await delay(20);

    // GC deletes the old records (marked before C started) but none of the files C wrote.
    const during = await runGc(t.nw, { graceMs: 0, clockMarginMs: 50 });
    assert.ok(during.chunks > 10, `records deleted: ${during.chunks}`);
    for (const { id } of firstChunks) assert.ok(await store.storedSize(id), 'a chunk file C wrote survives');

    resume();
    const c = await uploading;
    await addPath(t.nw, 'main', c);
    assertSameBytes(await collect(readNarBytes(t.nw, c)), Buffer.from(narC));
    await runGc(t.nw, NOW);
    assert.deepEqual(await t.nw.meta.stats(), await freshStats([narC]));
  } finally {
    await t.close();
  }
});

/** When the store last wrote the chunk, as its listing says; undefined when it has none. */
async function modifiedAt(store: ChunkStore, id: Uint8Array): Promise<number | undefined> {
  for await (const info of store.list()) if (Buffer.from(info.id).equals(id)) return info.modifiedAt;
  return undefined;
}

test('an ingest hold is published before the ingest goes on, and withdrawn soon after it ends', async () => {
  const t = await tempNarwhal();
  try {
    const floor = () => t.nw.meta.ingestHoldFloor(Date.now() - HOLD_STALE_MS, 'another process');
    assert.equal(await floor(), undefined);
    const before = Date.now();
    const release = await t.nw.holds.begin();
    const published = await floor();
    assert.ok(published !== undefined && published >= before && published <= Date.now());
    assert.equal(t.nw.holds.localFloor(), published);
    release();
    assert.equal(t.nw.holds.localFloor(), undefined);
    while ((await floor()) !== undefined) await delay(50);
  } finally {
    await t.close();
  }
});

test('serving a NAR counts as an access of the paths that use it', async () => {
  const t = await tempNarwhal();
  try {
    const cache = (await t.nw.meta.getCache('main'))!;
    const nar = await push(t.nw, await realisticNar('downloaded'));
    const hashPart = await addPath(t.nw, 'main', nar);
    await t.nw.meta.recordPathAccess(cache.id, hashPart, Date.now() - 2 * DAY, Infinity);
    await noteNarAccess(t.nw, cache, nar);
    assert.ok((await t.nw.meta.getPath(cache.id, hashPart))!.lastAccess > Date.now() - 60_000);
  } finally {
    await t.close();
  }
});

test('the GC schedule runs GC periodically and stops cleanly', async () => {
  const t = await tempNarwhal();
  try {
    await deletePaths(t.nw, 'main', [await addPath(t.nw, 'main', await push(t.nw, await realisticNar('scheduled')))]);
    const lines: string[] = [];
    const schedule = scheduleGc(t.nw, { intervalMs: 20, graceMs: 0, log: (line) => lines.push(line) });
    while (!lines.some((line) => /gc: deleted 0 paths, 1 NARs/.test(line))) await delay(20);
    await schedule.stop();
    assert.ok(
      lines.every((line) => line.startsWith('gc: ')),
      lines.join('\n'),
    );
    assert.equal((await t.nw.meta.stats()).nars, 0);
    assert.throws(() => scheduleGc(t.nw, { intervalMs: 30 * DAY, graceMs: 0, log: () => undefined }), /24 days/);
  } finally {
    await t.close();
  }
});

test('a GC while another process holds the gc lease is skipped and deletes nothing', async () => {
  const t = await tempNarwhal();
  try {
    await deletePaths(t.nw, 'main', [await addPath(t.nw, 'main', await push(t.nw, await realisticNar('held')))]);
    const before = await t.nw.meta.stats();
    const files = await storedFiles(t);
    assert.equal(await t.nw.meta.tryAcquireLease('gc', 'another-process', 60_000), true);

    const report = await runGc(t.nw, NOW);
    assert.equal(report.skipped, 'another GC is running');
    assert.equal(report.nars + report.chunks + report.files + report.paths, 0);
    assert.deepEqual(await t.nw.meta.stats(), before);
    assert.equal(await storedFiles(t), files);
    const lines: string[] = [];
    const schedule = scheduleGc(t.nw, { intervalMs: 20, graceMs: 0, log: (line) => lines.push(line) });
    while (lines.length === 0) await delay(20);
    await schedule.stop();
    assert.equal(lines[0], 'gc: skipped: another GC is running');
    assert.equal((await t.nw.meta.stats()).nars, 1);

    await t.nw.meta.releaseLease('gc', 'another-process');
    const after = await runGc(t.nw, NOW);
    assert.equal(after.skipped, undefined);
    assert.equal(after.nars, 1);
    // The run released its lease: another holder gets it at once.
    assert.equal(await t.nw.meta.tryAcquireLease('gc', 'another-process', 60_000), true);
  } finally {
    await t.close();
  }
});

test('GC deletes cache file uploads abandoned for hours, not live ones or stored files', async () => {
  const t = await tempNarwhal();
  try {
    const cache = (await t.nw.meta.getCache('main'))!;
    await putCacheFile(t.nw, cache, 'log/kept', bodyOf(Buffer.from('a stored log')), {
      contentType: 'text/plain',
      contentEncoding: null,
    });
    const abandoned = await t.nw.meta.startFileUpload();
    await t.nw.meta.appendFilePiece(abandoned, 0, new Uint8Array(1000));
    const soon = await runGc(t.nw, NOW);
    assert.equal(soon.abandonedFileUploads, 0, 'an upload may still be running');
    assert.ok(await t.nw.meta.getFilePiece(abandoned, 0));
    const later = await runGc(t.nw, { ...NOW, now: Date.now() + ABANDONED_FILE_UPLOAD_MS + 1000 });
    assert.equal(later.abandonedFileUploads, 1);
    assert.equal(later.abandonedFileBytes, 1000);
    assert.match(describeGc(later), /; 1 abandoned file uploads \(1000 bytes\)$/);
    assert.equal(await t.nw.meta.getFilePiece(abandoned, 0), undefined);
    const kept = (await getCacheFile(t.nw, cache, 'log/kept'))!;
    assert.equal((await collect(readCacheFile(t.nw, kept))).toString(), 'a stored log');
  } finally {
    await t.close();
  }
});
