/**
 * S3ChunkStore against a real S3 server (Ceph RGW, see s3-test-server.ts): the conformance suite,
 * at a prefix and at a bucket's root, plus what only S3 has: bucket and credential checks, the
 * URL factory, and a throughput figure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { zstdCompressSync } from 'node:zlib';
import { openChunkStore } from '../../src/context/backends.ts';
import { isNarwhalError } from '../../src/errors.ts';
import type { ChunkStore } from '../../src/storage/chunk-store.ts';
import { openS3ChunkStore, S3ChunkStore } from '../../src/storage/s3-chunk-store.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { chunk, hex, listedIds, runLimited, sha256 } from './chunk-fixtures.ts';
import { chunkStoreConformance } from './chunk-store-conformance.ts';
import { TestBucket, useS3TestBucket } from './s3-test-server.ts';

const testS3 = useS3TestBucket();
const rootBuckets = new Map<S3ChunkStore, TestBucket>();

const s3 = (store: ChunkStore): S3ChunkStore => store as S3ChunkStore;

chunkStoreConformance({
  name: 'S3ChunkStore under a prefix',
  listCount: 1100, // ListObjectsV2 answers 1000 keys at most: this crosses a page
  capabilities: [],
  open: () => openS3ChunkStore(testS3.bucket.location(`conformance/${randomBytes(4).toString('hex')}`)),
  openSibling: (store) => openS3ChunkStore(testS3.bucket.location(`${s3(store).location.prefix}-x`)),
  castr: {
    rawNames: (store) => testS3.bucket.keys(s3(store).location.prefix),
    putRaw: (store, name, bytes) => testS3.bucket.put(`${s3(store).location.prefix}/${name}`, bytes),
  },
  discard: (store) => testS3.bucket.deleteUnder(s3(store).location.prefix),
});

chunkStoreConformance({
  name: 'S3ChunkStore at a bucket root',
  listCount: 1100,
  capabilities: [],
  open: () => openAtRoot(new TestBucket(testS3.server.endpoint)),
  openSibling: (store) => openAtRoot(new TestBucket(testS3.server.endpoint, `${s3(store).location.bucket}-x`)),
  castr: {
    rawNames: (store) => rootBuckets.get(s3(store))!.keys(''),
    putRaw: (store, name, bytes) => rootBuckets.get(s3(store))!.put(name, bytes),
  },
  discard: async (store) => {
    await rootBuckets.get(s3(store))!.destroy();
    rootBuckets.delete(s3(store));
  },
});

async function openAtRoot(own: TestBucket): Promise<S3ChunkStore> {
  await own.create();
  const store = await openS3ChunkStore(own.location(''));
  rootBuckets.set(store, own);
  return store;
}

describe('S3ChunkStore on a real server', () => {
  test('keys are <prefix>/<4hex>/<64hex>.cacnk', async () => {
    const store = await openS3ChunkStore(testS3.bucket.location('a/b'));
    try {
      const c = chunk(100);
      await store.put(c.id, c.stored);
      const idHex = hex(c.id);
      assert.equal(store.key(c.id), `a/b/${idHex.slice(0, 4)}/${idHex}.cacnk`);
      assert.deepEqual(await testS3.bucket.keys('a'), [`b/${idHex.slice(0, 4)}/${idHex}.cacnk`]);
    } finally {
      await store.close();
      await testS3.bucket.deleteUnder('a');
    }
  });

  test('openChunkStore picks the S3 backend from an s3:// URL', async () => {
    const store = await openChunkStore(testS3.bucket.url('from-url'));
    try {
      assert.ok(store instanceof S3ChunkStore);
      assert.equal(store.location.prefix, 'from-url');
      const c = chunk(1000);
      await store.put(c.id, Buffer.from(c.stored));
      assertSameBytes(await store.get(c.id), c.stored);
      assert.equal((await testS3.bucket.keys('from-url')).length, 1);
    } finally {
      await store.close();
      await testS3.bucket.deleteUnder('from-url');
    }
  });

  test('a missing bucket is a clear error when the store is opened', async () => {
    await assert.rejects(
      openS3ChunkStore({ ...testS3.bucket.location('x'), bucket: 'no-such-bucket-narwhal' }),
      (err: unknown) => {
        assert.ok(isNarwhalError(err, 'bad-request'));
        assert.match(err.message, /bucket no-such-bucket-narwhal does not exist/);
        return true;
      },
    );
  });

  test('a wrong secret is refused with a message naming the variables', async () => {
    const secret = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
    try {
      await assert.rejects(openS3ChunkStore(testS3.bucket.location('x')), (err: unknown) => {
        assert.ok(isNarwhalError(err, 'bad-request'));
        assert.match(err.message, /refused access.*AWS_SECRET_ACCESS_KEY/);
        return true;
      });
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = secret;
    }
  });

  test('throughput: 1000 chunks of 64 KiB at concurrency 16', async (t) => {
    const store = await openS3ChunkStore(testS3.bucket.location('throughput'));
    try {
      const chunks = Array.from({ length: 1000 }, () => {
        const data = randomBytes(64 * 1024);
        return { id: sha256(data), stored: zstdCompressSync(data) };
      });
      let started = performance.now();
      await runLimited(chunks, 16, (c) => store.put(c.id, Buffer.from(c.stored)));
      const putSeconds = (performance.now() - started) / 1000;
      started = performance.now();
      await runLimited(chunks, 16, async (c) => assertSameBytes(await store.get(c.id), c.stored));
      const getSeconds = (performance.now() - started) / 1000;
      started = performance.now();
      const listed = await listedIds(store);
      const listSeconds = (performance.now() - started) / 1000;
      assert.equal(listed.length, 1000);
      const mb = (1000 * 64 * 1024) / 1e6;
      t.diagnostic(
        `PUT ${(1000 / putSeconds).toFixed(0)}/s (${(mb / putSeconds).toFixed(1)} MB/s), GET ${(1000 / getSeconds).toFixed(0)}/s (${(mb / getSeconds).toFixed(1)} MB/s), list ${(1000 / listSeconds).toFixed(0)} keys/s`,
      );
    } finally {
      await store.close();
      await testS3.bucket.deleteUnder('throughput');
    }
  });
});
