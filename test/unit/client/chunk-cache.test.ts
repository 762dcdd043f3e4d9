/**
 * The substituter's chunk cache (src/client/chunk-cache.ts): a batch of chunks is one file; what
 * was written reads back after a restart; the least recently used files go beyond the bound; a
 * file cut short (a crash while writing) or left half-written is not trusted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkCache } from '../../../src/client/chunk-cache.ts';

const chunk = (size: number) => {
  const data = new Uint8Array(randomBytes(size));
  return { hex: createHash('sha256').update(data).digest('hex'), data };
};

const withDir = async (run: (dir: string) => Promise<void>): Promise<void> => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-chunk-cache-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

test('a batch is one file, and reads back after a restart', () =>
  withDir(async (dir) => {
    const cache = await ChunkCache.open(dir, 1 << 20);
    const batch = [chunk(1000), chunk(2000), chunk(3000)];
    cache.keep(batch);
    await cache.settled();
    assert.equal((await readdir(dir)).length, 1);
    const again = await ChunkCache.open(dir, 1 << 20);
    for (const { hex, data } of batch) {
      assert.ok(again.has(hex));
      assert.deepEqual(new Uint8Array((await again.get(hex))!), data);
    }
    assert.equal(again.has(chunk(10).hex), false);
  }));

test('beyond its bound, the least recently used batches go', () =>
  withDir(async (dir) => {
    const cache = await ChunkCache.open(dir, 50_000);
    const a = [chunk(10_000), chunk(10_000)];
    const b = [chunk(10_000), chunk(10_000)];
    await cache.put(a);
    await cache.put(b);
    await cache.get(a[0].hex);
    const c = [chunk(10_000), chunk(10_000)];
    await cache.put(c);
    assert.ok(cache.bytes <= 50_000);
    assert.ok(
      b.every((x) => !cache.has(x.hex)),
      'the batch used least recently went',
    );
    for (const { hex, data } of [...a, ...c]) assert.deepEqual(new Uint8Array((await cache.get(hex))!), data);
    assert.equal((await readdir(dir)).length, 2);
  }));

test('a file cut short or left half-written by a crash is not trusted', () =>
  withDir(async (dir) => {
    const cache = await ChunkCache.open(dir, 1 << 20);
    const batch = [chunk(5000), chunk(5000)];
    await cache.put(batch);
    const [name] = await readdir(dir);
    await truncate(join(dir, name), (await stat(join(dir, name))).size - 100);
    await writeFile(join(dir, `pack-0123456789abcdef.tmp-${process.pid}`), 'half');
    const again = await ChunkCache.open(dir, 1 << 20);
    assert.ok(batch.every((x) => !again.has(x.hex)));
    assert.deepEqual(await readdir(dir), []);
  }));

test('a chunk kept a file each, as earlier versions did, is read', () =>
  withDir(async (dir) => {
    const one = chunk(4000);
    await writeFile(join(dir, one.hex), one.data);
    const cache = await ChunkCache.open(dir, 1 << 20);
    assert.deepEqual(new Uint8Array((await cache.get(one.hex))!), one.data);
  }));
