import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { isNarwhalError } from '../../src/errors.ts';
import type { ChunkStore } from '../../src/storage/chunk-store.ts';
import { PackChunkStore } from '../../src/storage/pack-chunk-store.ts';
import { newPackName, readFrameHeader } from '../../src/storage/pack-format.ts';
import { PackIndex } from '../../src/storage/pack-index.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { unzstd } from '../helpers/zstd-cli.ts';
import { editPackIndex, packStoreContents } from '../helpers/pack-store-contents.ts';
import { chunk, hex, listedIds } from './chunk-fixtures.ts';
import { chunkStoreConformance } from './chunk-store-conformance.ts';

const execFileAsync = promisify(execFile);
const rootOf = (store: ChunkStore): string => (store as PackChunkStore).root;

chunkStoreConformance({
  name: 'PackChunkStore',
  listCount: 1100,
  open: async () => new PackChunkStore(join(await mkdtemp(join(tmpdir(), 'narwhal-packs-')), 'chunks')),
  openSibling: async (store) => new PackChunkStore(`${rootOf(store)}-x`),
  capabilities: [
    'FrameReads',
    'FramePlaces',
    'FreeSpace',
    'WritePreparation',
    'ConditionalDelete',
    'LeftoverCleanup',
    'Compaction',
  ],
  hooks: {
    backdate: async (store, id, at) => {
      await store.flush();
      editPackIndex(rootOf(store), 'UPDATE chunks SET written_at = ? WHERE id = ?', at, id);
    },
    forgetCrc: async (store, id) => {
      await store.flush();
      editPackIndex(rootOf(store), 'UPDATE chunks SET crc = NULL WHERE id = ?', id);
    },
    // A pack no index names, as a crash before its seal leaves.
    leaveWriteLeftover: async (store, at) => {
      const path = join(rootOf(store), 'packs', newPackName(randomBytes(6)));
      await writeFile(path, randomBytes(1234));
      await utimes(path, new Date(at), new Date(at));
      return 1234;
    },
    chunkFileBytes: async (store) => {
      const sizes = await Promise.all(
        (await packFiles(rootOf(store))).map(async (name) => (await stat(join(rootOf(store), 'packs', name))).size),
      );
      return sizes.reduce((sum, size) => sum + size, 0);
    },
  },
  discard: async (store) => {
    const root = rootOf(store);
    await rm(root.endsWith('-x') ? root : dirname(root), { recursive: true, force: true });
  },
});

async function withRoot(body: (root: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-packs-'));
  try {
    await body(join(dir, 'chunks'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function packFiles(root: string): Promise<string[]> {
  return (await readdir(join(root, 'packs'))).sort();
}

test('a flushed chunk is found by another store on the same directory (another process); an unflushed one is not', async () => {
  await withRoot(async (root) => {
    const writer = new PackChunkStore(root);
    const reader = new PackChunkStore(root);
    try {
      const durable = chunk(3000);
      const pending = chunk(4000);
      await writer.put(durable.id, Buffer.from(durable.stored));
      await writer.flush();
      await writer.put(pending.id, Buffer.from(pending.stored));
      assertSameBytes(await reader.get(durable.id), durable.stored);
      assert.equal(await reader.storedSize(pending.id), undefined, 'not indexed before its pack is sealed');
      assertSameBytes(await writer.get(pending.id), pending.stored, 'the writer reads its own unsealed frame');
      await writer.flush();
      assertSameBytes(await reader.get(pending.id), pending.stored);
    } finally {
      await writer.close();
      await reader.close();
    }
  });
});

test('storedSizes looks up many chunks at once, in order: sealed, just written and absent', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    try {
      const sealed = [chunk(3000), chunk(5000), chunk(7000)];
      for (const c of sealed) await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      const pending = chunk(4000);
      await store.put(pending.id, Buffer.from(pending.stored));
      const absent = chunk(2000);
      const ids = [sealed[2].id, absent.id, pending.id, sealed[0].id, sealed[1].id];
      assert.deepEqual(await store.storedSizes(ids), [
        sealed[2].stored.length,
        undefined,
        pending.stored.length,
        sealed[0].stored.length,
        sealed[1].stored.length,
      ]);
      assert.deepEqual(await store.storedSizes([]), []);
    } finally {
      await store.close();
    }
  });
});

test('a pack is a zstd stream of its chunks, each after a skippable frame naming it', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    const chunks = [chunk(1000), chunk(70_000), chunk(5)];
    try {
      for (const c of chunks) await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
    } finally {
      await store.close();
    }
    const [name, ...others] = await packFiles(root);
    assert.deepEqual(others, []);
    const pack = await readFile(join(root, 'packs', name));
    assertSameBytes(unzstd(pack), Buffer.concat(chunks.map((c) => c.data)));
    assertSameBytes(readFrameHeader(pack.subarray(0, 40))!, chunks[0].id);
    assert.equal(readFrameHeader(pack.subarray(40, 80)), undefined, 'a chunk frame is no header');
  });
});

test('a pack never sealed (a crash before flush) is removed by removeLeftovers once old enough, and only then', async () => {
  await withRoot(async (root) => {
    const crashed = new PackChunkStore(root);
    const c = chunk(2000);
    await crashed.put(c.id, Buffer.from(c.stored));
    // No flush, no close: what a killed process leaves (its worker still holds the file open).
    const [leftover] = await packFiles(root);
    const store = new PackChunkStore(root, { idleLimitMs: 50 });
    try {
      assert.equal(await store.storedSize(c.id), undefined);
      assert.deepEqual(
        await store.removeLeftovers(Date.now() + 1000),
        { files: 0, bytes: 0 },
        'a pack written to within twice the idle limit is spared',
      );
      await new Promise((resolve) => setTimeout(resolve, 120));
      assert.deepEqual(
        await store.removeLeftovers(Date.now() - 60_000),
        { files: 0, bytes: 0 },
        'a pack written after the cutoff is spared',
      );
      const size = (await stat(join(root, 'packs', leftover))).size;
      assert.deepEqual(await store.removeLeftovers(Date.now() + 1000), { files: 1, bytes: size });
      assert.deepEqual(await packFiles(root), []);
      await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      assert.deepEqual(await store.removeLeftovers(Date.now() + 1000), { files: 0, bytes: 0 }, 'sealed packs stay');
      assertSameBytes(await store.get(c.id), c.stored);
    } finally {
      await store.close();
      await crashed.close().catch(() => undefined);
    }
  });
});

test('an idle open pack is closed before the next write: sealed if still there, its frames dropped if a GC deleted it', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root, { idleLimitMs: 30 });
    const fresh = new PackChunkStore(root);
    try {
      // Left open by an upload that failed (no flush), then idle.
      const kept = chunk(1000);
      await store.put(kept.id, Buffer.from(kept.stored));
      await new Promise((resolve) => setTimeout(resolve, 60));
      const next = chunk(2000);
      await store.put(next.id, Buffer.from(next.stored));
      await store.flush();
      assert.equal((await packFiles(root)).length, 2, 'the idle pack was closed, the next frame went to a new one');
      for (const c of [kept, next]) assertSameBytes(await fresh.get(c.id), c.stored);

      const gone = chunk(3000);
      await store.put(gone.id, Buffer.from(gone.stored));
      const idlePack = (await packFiles(root)).at(-1)!; // names sort by creation time
      await new Promise((resolve) => setTimeout(resolve, 60));
      // A GC in another process deleted the unindexed, idle pack.
      await rm(join(root, 'packs', idlePack));
      const after = chunk(4000);
      await store.put(after.id, Buffer.from(after.stored));
      await store.flush();
      assert.equal(await store.storedSize(gone.id), undefined, 'frames of a deleted pack are forgotten, not indexed');
      assert.equal(await fresh.storedSize(gone.id), undefined);
      assertSameBytes(await fresh.get(after.id), after.stored);
      assert.deepEqual((await packStoreContents(root)).misplaced, []);
    } finally {
      await store.close();
      await fresh.close();
    }
  });
});

test('deleteUnlessNewer spares a copy written after the cutoff, sealed or not', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    try {
      const old = chunk(100);
      const fresh = chunk(200);
      await store.put(old.id, Buffer.from(old.stored));
      await store.put(fresh.id, Buffer.from(fresh.stored));
      await store.flush();
      const cutoff = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 5));
      await store.put(fresh.id, Buffer.from(fresh.stored)); // rewritten after the cutoff, not yet sealed
      assert.equal(await store.deleteUnlessNewer(fresh.id, cutoff), undefined);
      await store.flush();
      assert.equal(await store.deleteUnlessNewer(fresh.id, cutoff), undefined);
      assert.equal(await store.deleteUnlessNewer(old.id, cutoff), old.stored.length);
      assert.deepEqual(await listedIds(store), [hex(fresh.id)]);
    } finally {
      await store.close();
    }
  });
});

test('compact rewrites mostly dead packs and merges small ones; what is live stays readable, what is deleted stays gone', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    const reader = new PackChunkStore(root);
    try {
      const first = Array.from({ length: 10 }, (_, i) => chunk(20_000 + i));
      for (const c of first) await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      const second = [chunk(30_000), chunk(31_000)];
      for (const c of second) await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      assert.equal((await packFiles(root)).length, 2);
      const [kept, ...deleted] = first;
      for (const c of deleted) await store.delete(c.id);
      // A reader that opened the old pack before compaction still reads through its handle.
      assertSameBytes(await reader.get(kept.id), kept.stored);

      assert.deepEqual(
        await store.compact(Date.now() - 60_000),
        { packs: 0, reclaimedBytes: 0 },
        'packs sealed after the cutoff are left alone',
      );
      const before = (await Promise.all((await packFiles(root)).map((name) => stat(join(root, 'packs', name))))).reduce(
        (sum, s) => sum + s.size,
        0,
      );
      const report = await store.compact(Date.now() + 1000);
      assert.equal(report.packs, 2);
      const log = await stat(join(root, 'index.sqlite-wal'));
      assert.equal(log.size, 0, "the index's log is emptied, with another connection open");
      const after = await packFiles(root);
      assert.equal(after.length, 1);
      const afterBytes = (await stat(join(root, 'packs', after[0]))).size;
      assert.equal(report.reclaimedBytes, before - afterBytes);
      assert.equal(
        afterBytes,
        [kept, ...second].reduce((sum, c) => sum + 40 + c.stored.length, 0),
      );

      for (const c of [kept, ...second]) {
        assertSameBytes(await store.get(c.id), c.stored);
        assertSameBytes(await reader.get(c.id), c.stored);
      }
      for (const c of deleted)
        await assert.rejects(store.get(c.id), (err: unknown) => isNarwhalError(err, 'chunk-missing'));
      assert.deepEqual(await listedIds(store), [kept, ...second].map((c) => hex(c.id)).sort());
      assert.deepEqual(await store.compact(Date.now() + 1000), { packs: 0, reclaimedBytes: 0 }, 'nothing left to do');
    } finally {
      await store.close();
      await reader.close();
    }
  });
});

test('a pack more than half live is compacted only when the caller asks for less live', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    try {
      // One pack, not small (4 MiB and more): 60% of it stays live.
      const chunks = Array.from({ length: 110 }, (_, i) => chunk(40_000 + i));
      for (const c of chunks) await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      for (const c of chunks.slice(0, 44)) await store.delete(c.id);
      assert.equal((await store.compact(Date.now() + 1000)).packs, 0);
      assert.equal((await store.compact(Date.now() + 1000, { liveAtMost: 0.75 })).packs, 1);
      for (const c of chunks.slice(44)) assertSameBytes(await store.get(c.id), c.stored);
    } finally {
      await store.close();
    }
  });
});

test('relocation leaves a chunk that was rewritten or deleted after compaction copied it', async () => {
  await withRoot(async (root) => {
    await mkdir(root, { recursive: true });
    const index = new PackIndex(join(root, 'index.sqlite'));
    try {
      const [a, b, c] = [chunk(10), chunk(20), chunk(30)];
      // Each frame's CRC as written, which moves with it.
      const crcs = [0x11111111, -0x22222222, 0x33333333];
      const at = (pack: string, offset: number, crc: number) => ({ pack, offset, length: 10, crc });
      index.recordSealed(
        [{ name: 'old', bytes: 300 }],
        [a, b, c].map((x, i) => ({ id: x.id, ...at('old', 40 + 100 * i, crcs[i]), writtenAt: 1 })),
        1,
      );
      const copies = [a, b, c].map((x, i) => ({
        id: x.id,
        old: at('old', 40 + 100 * i, crcs[i]),
        offset: 40 + 50 * i,
      }));
      // After the copy: `a` is rewritten elsewhere (recompression), `c` deleted (GC).
      index.recordSealed(
        [{ name: 'newer', bytes: 50 }],
        [{ id: a.id, ...at('newer', 40, 0x44444444), writtenAt: 2 }],
        2,
      );
      index.delete(c.id);
      assert.equal(index.relocate('old', { name: 'compacted', bytes: 150 }, copies, 3), true);
      assert.deepEqual(index.lookup(a.id), at('newer', 40, 0x44444444));
      assert.deepEqual(index.lookup(b.id), at('compacted', 90, crcs[1]));
      assert.equal(index.lookup(c.id), undefined);
      assert.deepEqual([...index.packNames()].sort(), ['compacted', 'newer']);
      index.recordSealed([{ name: 'busy', bytes: 50 }], [{ id: c.id, ...at('busy', 40, crcs[2]), writtenAt: 4 }], 4);
      assert.equal(index.forgetIfEmpty('busy'), false, 'a pack with a live chunk stays');
    } finally {
      index.close();
    }
  });
});

test('a frame that is not where the index says is an error, never other bytes', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    try {
      const c = chunk(5000);
      await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      const [name] = await packFiles(root);
      await writeFile(join(root, 'packs', name), new Uint8Array(10)); // truncated behind the store's back
      const fresh = new PackChunkStore(root);
      try {
        await assert.rejects(fresh.get(c.id), /ends before/);
      } finally {
        await fresh.close();
      }
    } finally {
      await store.close();
    }
  });
});

test('each frame is read with the CRC-32 it was written with: unsealed, sealed, from another store, after compaction, and after encodeAndPut', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    const reader = new PackChunkStore(root);
    const crcOf = (bytes: Uint8Array): number => crc32(bytes) | 0;
    try {
      const chunks = Array.from({ length: 4 }, (_, i) => chunk(5000 + i));
      for (const c of chunks) await store.put(c.id, Buffer.from(c.stored));
      const unsealed = (await store.getFrames([chunks[0].id]))[0];
      assertSameBytes(unsealed.stored, chunks[0].stored);
      assert.equal(unsealed.crc, crcOf(chunks[0].stored));
      await store.flush();
      for (const c of chunks) {
        assert.equal((await store.getFrames([c.id]))[0].crc, crcOf(c.stored));
        assert.equal((await reader.getFrames([c.id]))[0].crc, crcOf(c.stored));
      }

      const encoded = chunk(7000);
      const storedSize = await store.encodeAndPut(encoded.id, Buffer.from(encoded.data), 3);
      await store.flush();
      const frame = (await reader.getFrames([encoded.id]))[0];
      assert.equal(frame.stored.length, storedSize);
      assert.equal(frame.crc, crcOf(frame.stored), 'the CRC is of the frame the writer compressed, not of the data');

      for (const c of chunks.slice(1)) await store.delete(c.id);
      assert.equal((await store.compact(Date.now() + 1000)).packs, 2);
      const moved = (await reader.getFrames([chunks[0].id]))[0];
      assertSameBytes(moved.stored, chunks[0].stored);
      assert.equal(moved.crc, crcOf(chunks[0].stored));
    } finally {
      await store.close();
      await reader.close();
    }
  });
});

/** A pack index as made before frames' CRCs were recorded, open. */
function oldIndex(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA journal_mode = WAL;
    CREATE TABLE packs (name TEXT PRIMARY KEY, bytes INTEGER NOT NULL, sealed_at INTEGER NOT NULL);
    CREATE TABLE chunks (id BLOB PRIMARY KEY, pack TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, written_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE INDEX chunks_by_pack ON chunks (pack);`);
  return db;
}

test('an index made before CRCs were recorded gains the column: its frames read with no CRC, new ones with theirs', async () => {
  await withRoot(async (root) => {
    await mkdir(root, { recursive: true });
    const old = oldIndex(join(root, 'index.sqlite'));
    const before = chunk(10);
    old.prepare('INSERT INTO chunks VALUES (?, ?, ?, ?, ?)').run(before.id, 'p', 40, 10, 1);
    old.close();
    const index = new PackIndex(join(root, 'index.sqlite'));
    try {
      assert.deepEqual(index.lookup(before.id), { pack: 'p', offset: 40, length: 10, crc: undefined });
      const after = chunk(20);
      index.recordSealed(
        [{ name: 'q', bytes: 60 }],
        [{ id: after.id, pack: 'q', offset: 40, length: 20, crc: -5, writtenAt: 2 }],
        2,
      );
      assert.deepEqual(index.lookup(after.id), { pack: 'q', offset: 40, length: 20, crc: -5 });
    } finally {
      index.close();
    }
    // Opening it again finds the column there.
    new PackIndex(join(root, 'index.sqlite')).close();
  });
});

test('processes opening an old index together add the CRC column once, and all open it', async () => {
  await withRoot(async (root) => {
    await mkdir(root, { recursive: true });
    const path = join(root, 'index.sqlite');
    const old = oldIndex(path);
    // Holding the write lock lets every process find the column missing before any can add it.
    old.exec('BEGIN IMMEDIATE');
    const open = `import { PackIndex } from ${JSON.stringify(new URL('../../src/storage/pack-index.ts', import.meta.url).href)};
      new PackIndex(${JSON.stringify(path)}).close();`;
    const opened = Promise.allSettled(
      Array.from({ length: 3 }, () => execFileAsync(process.execPath, ['--input-type=module', '-e', open])),
    );
    await delay(2000);
    old.exec('ROLLBACK');
    old.close();
    for (const result of await opened)
      assert.equal(result.status, 'fulfilled', result.status === 'rejected' ? String(result.reason) : '');
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      const columns = (db.prepare("SELECT name FROM pragma_table_info('chunks')").all() as { name: string }[]).map(
        (c) => c.name,
      );
      assert.deepEqual(columns, ['id', 'pack', 'offset', 'length', 'written_at', 'crc']);
    } finally {
      db.close();
    }
  });
});

test('frames read together come back each whole and in the order asked: neighbours, gaps, repeats, other packs', async () => {
  await withRoot(async (root) => {
    const store = new PackChunkStore(root);
    try {
      const first = Array.from({ length: 5 }, (_, i) => chunk(3000 + 1000 * i));
      for (const c of first) await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      const other = chunk(100_000);
      await store.put(other.id, Buffer.from(other.stored));
      await store.flush();
      assert.equal((await packFiles(root)).length, 2);
      const asked = [first[0], first[1], first[3], other, first[4], first[2], first[2], first[0]];
      const frames = await store.getFrames(asked.map((c) => c.id));
      assert.equal(frames.length, asked.length);
      for (const [i, frame] of frames.entries()) assertSameBytes(frame.stored, asked[i].stored, `frame ${i}`);
      await store.delete(first[1].id);
      await assert.rejects(store.getFrames([first[0].id, first[1].id]), (err: unknown) =>
        isNarwhalError(err, 'chunk-missing'),
      );
    } finally {
      await store.close();
    }
  });
});
