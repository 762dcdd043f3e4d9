/**
 * The one conformance suite of the ChunkStore contract (src/storage/chunk-store.ts) and of the
 * capabilities a backend has (chunk-store-capability-conformance.ts), run against every backend by
 * a `<backend>-chunk-store.test.ts` that supplies a ConformanceTarget.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { zstdDecompressSync } from 'node:zlib';
import { isNarwhalError } from '../../src/errors.ts';
import { castrKey } from '../../src/storage/chunk-store.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { chunk, compressible, hex, listedIds, runLimited, sha256 } from './chunk-fixtures.ts';
import { capabilityConformance } from './chunk-store-capability-conformance.ts';
import { storeTest, type ConformanceTarget, type StoreTestBody } from './conformance-target.ts';

export function chunkStoreConformance(target: ConformanceTarget): void {
  describe(`ChunkStore conformance: ${target.name}`, () => {
    const withStore = (name: string, body: StoreTestBody): void => storeTest(target, name, body);

    withStore('a missing chunk is chunk-missing to get and undefined to storedSize', async (store) => {
      const id = randomBytes(32);
      await assert.rejects(store.get(id), (err: unknown) => isNarwhalError(err, 'chunk-missing'));
      assert.equal(await store.storedSize(id), undefined);
    });

    withStore('put then get returns the same bytes; storedSize is their length', async (store) => {
      const small = chunk(100);
      const big = chunk(260 * 1024); // above the largest chunk, so reads span many pieces
      await store.put(small.id, Buffer.from(small.stored));
      await store.put(big.id, Buffer.from(big.stored));
      assertSameBytes(await store.get(small.id), small.stored);
      assertSameBytes(await store.get(big.id), big.stored);
      assert.equal(await store.storedSize(small.id), small.stored.length);
      assert.equal(await store.storedSize(big.id), big.stored.length);
    });

    withStore('put is idempotent and a second put of other bytes replaces them whole', async (store) => {
      const c = chunk(5000);
      await store.put(c.id, Buffer.from(c.stored));
      await store.put(c.id, Buffer.from(c.stored));
      assertSameBytes(await store.get(c.id), c.stored);
      const other = randomBytes(777);
      await store.put(c.id, Buffer.from(other));
      assertSameBytes(await store.get(c.id), other);
      assert.deepEqual(await listedIds(store), [hex(c.id)]);
    });

    withStore('concurrent puts of the same id all succeed and leave one whole chunk', async (store) => {
      const c = chunk(64 * 1024);
      await Promise.all(Array.from({ length: 16 }, () => store.put(c.id, Buffer.from(c.stored))));
      assertSameBytes(await store.get(c.id), c.stored);
      assert.deepEqual(await listedIds(store), [hex(c.id)]);
      if (target.castr) assert.deepEqual(await target.castr.rawNames(store), [castrKey(c.id)]);
    });

    withStore('encodeAndPut stores one zstd frame of the data and returns its size', async (store) => {
      const data = compressible(200 * 1024);
      const expected = Buffer.from(data); // encodeAndPut may take the caller's buffer
      const id = sha256(expected);
      const size = await store.encodeAndPut(id, data, 3);
      const stored = await store.get(id);
      assert.equal(size, stored.length);
      assert.equal(await store.storedSize(id), size);
      assert.ok(size < expected.length / 2, `compressed ${expected.length} bytes to ${size}`);
      assert.deepEqual([...stored.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'zstd frame magic');
      assertSameBytes(zstdDecompressSync(stored), expected);
    });

    withStore('encodeAndPut of a view into a larger buffer stores just the view', async (store) => {
      const whole = compressible(100 * 1024);
      const view = whole.subarray(1000, 51_000);
      const expected = Buffer.from(view);
      const id = sha256(expected);
      await store.encodeAndPut(id, view, 1);
      assertSameBytes(zstdDecompressSync(await store.get(id)), expected);
    });

    withStore('flush resolves with and without pending puts; chunks stay readable', async (store) => {
      await store.flush();
      const chunks = Array.from({ length: 20 }, (_, i) => chunk(1000 + i));
      await Promise.all(chunks.map((c) => store.put(c.id, Buffer.from(c.stored))));
      await Promise.all([store.flush(), store.flush()]);
      for (const c of chunks) assertSameBytes(await store.get(c.id), c.stored);
    });

    withStore('delete removes a chunk and is idempotent', async (store) => {
      const keep = chunk(300);
      const gone = chunk(400);
      await store.put(keep.id, Buffer.from(keep.stored));
      await store.put(gone.id, Buffer.from(gone.stored));
      await store.delete(gone.id);
      await store.delete(gone.id);
      await store.delete(randomBytes(32));
      await assert.rejects(store.get(gone.id), (err: unknown) => isNarwhalError(err, 'chunk-missing'));
      assert.equal(await store.storedSize(gone.id), undefined);
      assertSameBytes(await store.get(keep.id), keep.stored);
      assert.deepEqual(await listedIds(store), [hex(keep.id)]);
    });

    withStore('an empty store lists nothing', async (store) => {
      assert.deepEqual(await listedIds(store), []);
    });

    withStore(`list yields every chunk once with its stored size (${target.listCount} chunks)`, async (store) => {
      const before = Date.now();
      const sizes = new Map<string, number>();
      const ids = Array.from({ length: target.listCount }, (_, i) => {
        const id = randomBytes(32);
        sizes.set(hex(id), 1 + (i % 97));
        return id;
      });
      await runLimited(ids, 16, (id) => store.put(id, randomBytes(sizes.get(hex(id))!)));
      const seen = new Map<string, number>();
      for await (const info of store.list()) {
        assert.equal(info.id.length, 32);
        assert.ok(!seen.has(hex(info.id)), `listed twice: ${hex(info.id)}`);
        seen.set(hex(info.id), info.storedSize);
        // Clocks of a remote store may differ from ours; a day's slack keeps this about units.
        assert.ok(Math.abs(info.modifiedAt - before) < 86_400_000, `modifiedAt ${info.modifiedAt} is a time in ms`);
      }
      assert.equal(seen.size, sizes.size);
      for (const [id, size] of sizes) assert.equal(seen.get(id), size, `size of ${id}`);
    });

    const castr = target.castr;
    if (castr) {
      withStore('chunks are stored under castr keys (<4hex>/<64hex>.cacnk) at the root', async (store) => {
        const chunks = Array.from({ length: 5 }, (_, i) => chunk(100 + i));
        for (const c of chunks) await store.put(c.id, c.stored);
        assert.deepEqual(await castr.rawNames(store), chunks.map((c) => castrKey(c.id)).sort());
        assert.match(castrKey(chunks[0].id), /^[0-9a-f]{4}\/[0-9a-f]{64}\.cacnk$/);
      });

      withStore('a chunk written behind the store’s back under its castr key is read and listed', async (store) => {
        const c = chunk(2000);
        await castr.putRaw(store, castrKey(c.id), c.stored);
        assertSameBytes(await store.get(c.id), c.stored);
        assert.equal(await store.storedSize(c.id), c.stored.length);
        assert.deepEqual(await listedIds(store), [hex(c.id)]);
      });

      withStore('list ignores names that are not chunk files', async (store) => {
        const c = chunk(2000);
        await store.put(c.id, c.stored);
        const idHex = hex(randomBytes(32));
        const foreign = [
          'README',
          `${idHex.slice(0, 4)}/notes.txt`,
          `${castrKey(c.id)}.tmp`,
          `${idHex.slice(0, 4)}/${idHex.toUpperCase()}.cacnk`,
          `${idHex.slice(0, 4)}/${idHex.slice(0, 63)}.cacnk`,
          `${idHex.slice(0, 4) === 'ffff' ? 'fffe' : 'ffff'}/${idHex}.cacnk`, // in the wrong directory
          `zzzz/${idHex}.cacnk`,
          `${idHex.slice(0, 4)}/deeper/${idHex}.cacnk`,
        ];
        for (const name of foreign) await castr.putRaw(store, name, randomBytes(10));
        assert.deepEqual(await listedIds(store), [hex(c.id)]);
      });
    }

    withStore('a sibling location (same name plus a suffix) is a separate store', async (store) => {
      const sibling = await target.openSibling(store);
      try {
        const mine = chunk(100);
        const theirs = chunk(200);
        await store.put(mine.id, Buffer.from(mine.stored));
        await sibling.put(theirs.id, Buffer.from(theirs.stored));
        assert.deepEqual(await listedIds(store), [hex(mine.id)]);
        assert.deepEqual(await listedIds(sibling), [hex(theirs.id)]);
        await assert.rejects(store.get(theirs.id), (err: unknown) => isNarwhalError(err, 'chunk-missing'));
      } finally {
        await sibling.close();
        await target.discard(sibling);
      }
    });

    capabilityConformance(target);
  });
}
