/**
 * Chunks moved between backends (local to S3 and back, against the real S3 server of
 * s3-test-server.ts), by the library call and by the `narwhal migrate-storage` binary; and a
 * Narwhal whose chunks live in S3 (`storage: s3://...`) ingesting and serving a NAR.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { closeNarwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes } from '../../src/serving/nar-reader.ts';
import { migrateStorage, type MigrationProgress } from '../../src/maintenance/migrate-storage.ts';
import { castrKey, type ChunkStore } from '../../src/storage/chunk-store.ts';
import { LocalChunkStore } from '../../src/storage/local-chunk-store.ts';
import { openS3ChunkStore } from '../../src/storage/s3-chunk-store.ts';
import { PackChunkStore } from '../../src/storage/pack-chunk-store.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { bodyOf, realisticNar } from '../helpers/narwhal-fixtures.ts';
import { chunk, hex, listedIds } from './chunk-fixtures.ts';
import { startS3TestServer, TestBucket, type S3TestServer } from './s3-test-server.ts';

const execFileAsync = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/narwhal.js');

let server: S3TestServer;
let bucket: TestBucket;
let dir: string;

before(async () => {
  server = await startS3TestServer();
  bucket = new TestBucket(server.endpoint);
  await bucket.create();
  dir = await mkdtemp(join(tmpdir(), 'narwhal-migrate-'));
});

after(async () => {
  try {
    await bucket?.destroy();
  } finally {
    await server?.stop();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function storeWith(store: ChunkStore, count: number): Promise<Map<string, Uint8Array>> {
  const stored = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const c = chunk(500 + i * 37);
    stored.set(hex(c.id), c.stored);
    await store.put(c.id, Buffer.from(c.stored));
  }
  await store.flush();
  return stored;
}

async function assertHolds(store: ChunkStore, expected: Map<string, Uint8Array>): Promise<void> {
  assert.deepEqual(await listedIds(store), [...expected.keys()].sort());
  for (const [id, bytes] of expected) assertSameBytes(await store.get(Buffer.from(id, 'hex')), bytes, `chunk ${id}`);
}

describe('migrateStorage', () => {
  test('local to S3 and back: every chunk copied once, byte for byte; a corrupt one reported, not copied', async () => {
    const local = new LocalChunkStore(join(dir, 'lib-a'));
    const s3 = await openS3ChunkStore(bucket.location('lib'));
    const back = new LocalChunkStore(join(dir, 'lib-b'));
    try {
      const expected = await storeWith(local, 40);
      const damagedId = randomBytes(32);
      await mkdir(join(local.root, castrKey(damagedId).slice(0, 4)), { recursive: true });
      await writeFile(join(local.root, castrKey(damagedId)), chunk(100).stored); // a valid frame, of other data

      const updates: MigrationProgress[] = [];
      const there = await migrateStorage(local, s3, { concurrency: 4, onProgress: (p) => updates.push({ ...p }) });
      assert.deepEqual(there, {
        seen: 41,
        copied: 40,
        copiedBytes: sumBytes(expected),
        present: 0,
        vanished: 0,
        corrupt: [hex(damagedId)],
      });
      assert.equal(updates.length, 41);
      assert.equal(updates.at(-1)!.copied, 40);
      await assertHolds(s3, expected);

      // A second run finds everything there already.
      const again = await migrateStorage(local, s3);
      assert.deepEqual([again.copied, again.present, again.corrupt.length], [0, 40, 1]);

      const home = await migrateStorage(s3, back);
      assert.deepEqual([home.seen, home.copied, home.present], [40, 40, 0]);
      await assertHolds(back, expected);
    } finally {
      await Promise.all([local.close(), s3.close(), back.close()]);
      await bucket.deleteUnder('lib');
    }
  });

  test('only missing chunks are copied; what the destination has is left alone', async () => {
    const local = new LocalChunkStore(join(dir, 'partial'));
    const s3 = await openS3ChunkStore(bucket.location('partial'));
    try {
      const expected = await storeWith(local, 10);
      const [firstId, firstBytes] = [...expected][0];
      await s3.put(Buffer.from(firstId, 'hex'), Buffer.from(firstBytes));
      const result = await migrateStorage(local, s3);
      assert.deepEqual([result.copied, result.present], [9, 1]);
      await assertHolds(s3, expected);
    } finally {
      await Promise.all([local.close(), s3.close()]);
      await bucket.deleteUnder('partial');
    }
  });
});

describe('narwhal migrate-storage', () => {
  const narwhal = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await execFileAsync(process.execPath, [BIN, ...args], { env: process.env });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  test('copies a data dir’s chunks to S3 and from S3 to another directory', async () => {
    const dataDir = join(dir, 'cli-data');
    const local = new LocalChunkStore(join(dataDir, 'castr'));
    const expected = await storeWith(local, 25);
    await local.close();
    const url = bucket.url('cli');
    try {
      const up = await narwhal('migrate-storage', '--data-dir', dataDir, '--to', url);
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stderr, /copying chunks from .*cli-data\/castr to s3:\/\/narwhal-test-[0-9a-f]+\/cli\?endpoint=/);
      assert.equal(
        up.stdout,
        `25 chunks seen, 25 copied (${(sumBytes(expected) / 1e6).toFixed(1)} MB), 0 already there\n`,
      );
      assert.equal((await bucket.keys('cli')).length, 25);

      const target = join(dir, 'cli-back');
      const down = await narwhal('migrate-storage', '--from', url, '--to', target);
      assert.equal(down.code, 0, down.stderr);
      assert.match(down.stdout, /^25 chunks seen, 25 copied/);
      const back = new LocalChunkStore(target);
      try {
        await assertHolds(back, expected);
      } finally {
        await back.close();
      }
    } finally {
      await bucket.deleteUnder('cli');
    }
  });

  test('moves an older data dir’s castr chunks into a pack store, and back out as a castr directory casync can read', async () => {
    const dataDir = join(dir, 'upgrade');
    const castr = new LocalChunkStore(join(dataDir, 'castr'));
    const expected = await storeWith(castr, 12);
    await castr.close();
    const into = await narwhal('migrate-storage', '--data-dir', dataDir, '--to', `pack:${join(dataDir, 'chunks')}`);
    assert.equal(into.code, 0, into.stderr);
    assert.match(into.stderr, /copying chunks from .*upgrade\/castr to pack:.*upgrade\/chunks/);
    assert.match(into.stdout, /^12 chunks seen, 12 copied/);
    // With the castr directory gone, the data dir's default store is the pack store.
    await rm(join(dataDir, 'castr'), { recursive: true });
    const packs = new PackChunkStore(join(dataDir, 'chunks'));
    try {
      await assertHolds(packs, expected);
    } finally {
      await packs.close();
    }
    const out = await narwhal('migrate-storage', '--data-dir', dataDir, '--to', join(dir, 'exported'));
    assert.equal(out.code, 0, out.stderr);
    const exported = new LocalChunkStore(join(dir, 'exported'));
    try {
      await assertHolds(exported, expected);
    } finally {
      await exported.close();
    }
  });

  test('refuses bad arguments with a clear message and status 2', async () => {
    const cases: [string[], RegExp][] = [
      [['migrate-storage'], /needs --from URL or --to URL/],
      [['migrate-storage', '--from', 'x', '--to', './x'], /the same storage/],
      [['migrate-storage', '--to', 's3://Bad_Bucket/p'], /not a valid S3 bucket name/],
      [
        [
          'migrate-storage',
          '--data-dir',
          dir,
          '--to',
          `s3://no-such-bucket-narwhal/p?endpoint=${server.endpoint}&path-style=1`,
        ],
        /bucket no-such-bucket-narwhal does not exist/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await narwhal(...args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message);
    }
  });
});

describe('a Narwhal with its chunks in S3', () => {
  test('ingests a NAR into S3 and reads it back', async () => {
    const nw = await openNarwhal({ dataDir: join(dir, 'nw'), storage: bucket.url('nw') });
    try {
      const nar = await realisticNar('in s3');
      const record = await ingestNar(nw, bodyOf(nar), { compression: 'none' });
      const keys = await bucket.keys('nw');
      assert.ok(
        keys.length > 10 && keys.length <= record.chunkCount,
        `${keys.length} objects for ${record.chunkCount} chunks`,
      );
      const opened = (await openNar(nw, record.narHash))!;
      const parts: Buffer[] = [];
      for await (const part of readNarBytes(nw, opened)) parts.push(Buffer.from(part));
      assertSameBytes(Buffer.concat(parts), nar);
    } finally {
      await closeNarwhal(nw);
      await bucket.deleteUnder('nw');
    }
  });
});

function sumBytes(chunks: Map<string, Uint8Array>): number {
  return [...chunks.values()].reduce((sum, b) => sum + b.length, 0);
}
