/**
 * The conformance suite of the capabilities of src/storage/chunk-store-capabilities.ts: a section
 * per capability, whose tests exist for a backend that declares it (and fail where its store's
 * type guard disagrees), and a test that the guards find exactly the capabilities declared.
 */
import { describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { zstdDecompressSync } from 'node:zlib';
import { isNarwhalError } from '../../src/errors.ts';
import { castrKey, frameCrc, type ChunkStore } from '../../src/storage/chunk-store.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import type { LeftoverCleanup } from '../../src/storage/chunk-store-capabilities.ts';
import { readFramesSync } from '../../src/storage/pack-read.ts';
import { chunk, compressible, hex, listedIds, sha256, type StoredChunk } from './chunk-fixtures.ts';
import {
  CAPABILITY_GUARDS,
  requiredHook,
  storeTest,
  type CapabilityName,
  type ConformanceTarget,
} from './conformance-target.ts';

const HOUR = 3_600_000;
const isMissing = (err: unknown): boolean => isNarwhalError(err, 'chunk-missing');
/** A whole second this many ms ago. */
const wholeSecondAgo = (ms: number): number => Math.floor((Date.now() - ms) / 1000) * 1000;

type Guard<Capability> = (store: ChunkStore) => store is ChunkStore & Capability;

export function capabilityConformance(target: ConformanceTarget): void {
  /** A test of a capability, for a target that declares it; its store's type guard must agree. */
  const capabilityTest =
    <Capability>(capability: CapabilityName, has: Guard<Capability>) =>
    (name: string, body: (store: ChunkStore & Capability, t: TestContext) => Promise<void>): void => {
      if (!target.capabilities.includes(capability)) return;
      storeTest(target, name, async (store, t) => {
        assert.ok(has(store), `${target.name} declares ${capability}, but its store lacks it`);
        await body(store, t);
      });
    };

  storeTest(target, 'the store has exactly the capabilities the target declares', async (store) => {
    const found = (Object.keys(CAPABILITY_GUARDS) as CapabilityName[]).filter((name) => CAPABILITY_GUARDS[name](store));
    assert.deepEqual(found.sort(), [...target.capabilities].sort());
  });

  describe('ConditionalDelete', () => {
    const withDelete = capabilityTest('ConditionalDelete', CAPABILITY_GUARDS.ConditionalDelete);

    withDelete(
      'deleteUnlessNewer deletes a chunk last written at or before notAfter and returns its stored size',
      async (store) => {
        const c = chunk(3000);
        await store.put(c.id, Buffer.from(c.stored));
        const at = wholeSecondAgo(HOUR);
        await requiredHook(target, 'backdate')(store, c.id, at);
        assert.equal(await store.deleteUnlessNewer(c.id, at), c.stored.length);
        await assert.rejects(store.get(c.id), isMissing);
        assert.equal(await store.storedSize(c.id), undefined);
        assert.deepEqual(await listedIds(store), []);
        assert.equal(await store.deleteUnlessNewer(c.id, at), undefined, 'nothing left to delete');
        assert.equal(await store.deleteUnlessNewer(randomBytes(32), Date.now() + HOUR), undefined, 'never stored');
      },
    );

    withDelete('deleteUnlessNewer spares a chunk written after notAfter and returns undefined', async (store) => {
      const fresh = chunk(2000);
      await store.put(fresh.id, Buffer.from(fresh.stored));
      assert.equal(await store.deleteUnlessNewer(fresh.id, Date.now() - HOUR), undefined, 'just written');
      await store.flush();
      assert.equal(await store.deleteUnlessNewer(fresh.id, Date.now() - HOUR), undefined, 'just written and flushed');
      const older = chunk(2500);
      await store.put(older.id, Buffer.from(older.stored));
      const at = wholeSecondAgo(HOUR);
      await requiredHook(target, 'backdate')(store, older.id, at);
      assert.equal(await store.deleteUnlessNewer(older.id, at - 1), undefined, 'written a millisecond after notAfter');
      assertSameBytes(await store.get(fresh.id), fresh.stored);
      assertSameBytes(await store.get(older.id), older.stored);
      assert.deepEqual(await listedIds(store), [hex(fresh.id), hex(older.id)].sort());
    });

    withDelete('a put racing deleteUnlessNewer of an old copy always leaves the chunk stored', async (store) => {
      const chunks = Array.from({ length: 20 }, (_, i) => chunk(1000 + i));
      const at = wholeSecondAgo(HOUR);
      for (const c of chunks) {
        await store.put(c.id, Buffer.from(c.stored));
        await requiredHook(target, 'backdate')(store, c.id, at);
      }
      await Promise.all(
        chunks.flatMap((c) => [store.deleteUnlessNewer(c.id, at), store.put(c.id, Buffer.from(c.stored))]),
      );
      for (const c of chunks) assertSameBytes(await store.get(c.id), c.stored);
      assert.deepEqual(await listedIds(store), chunks.map((c) => hex(c.id)).sort());
    });
  });

  describe('LeftoverCleanup', () => {
    const withCleanup = capabilityTest('LeftoverCleanup', CAPABILITY_GUARDS.LeftoverCleanup);

    withCleanup(
      'removeLeftovers removes leftovers of writes last modified at or before notAfter, and only those',
      async (store) => {
        const live = chunk(1000);
        await store.put(live.id, Buffer.from(live.stored));
        await store.flush();
        const leave = requiredHook(target, 'leaveWriteLeftover');
        const older = wholeSecondAgo(3 * HOUR);
        const newer = older + HOUR;
        const olderBytes = await leave(store, older);
        const newerBytes = await leave(store, newer);
        assert.deepEqual(await store.removeLeftovers(older + HOUR / 2), { files: 1, bytes: olderBytes });
        assert.deepEqual(
          await store.removeLeftovers(older + HOUR / 2),
          { files: 0, bytes: 0 },
          'the newer leftover is spared',
        );
        assert.deepEqual(
          await store.removeLeftovers(newer),
          { files: 1, bytes: newerBytes },
          'modified at notAfter exactly',
        );
        assertSameBytes(await store.get(live.id), live.stored);
        assert.deepEqual(await listedIds(store), [hex(live.id)]);
      },
    );

    /** A test on a store with a chunk moved aside as a crash in deleteUnlessNewer leaves it, where the target can do that. */
    const withMovedAside = (
      name: string,
      body: (store: ChunkStore & LeftoverCleanup, moved: StoredChunk) => Promise<void>,
    ): void =>
      target.hooks?.moveAside === undefined
        ? undefined
        : withCleanup(name, async (store) => {
            const moveAside = requiredHook(target, 'moveAside');
            const moved = chunk(1500);
            await store.put(moved.id, Buffer.from(moved.stored));
            await moveAside(store, moved.id);
            await body(store, moved);
          });

    withMovedAside(
      'removeLeftovers puts back a chunk an interrupted deleteUnlessNewer moved aside',
      async (store, c) => {
        await assert.rejects(store.get(c.id), isMissing);
        assert.deepEqual(
          await store.removeLeftovers(Date.now() - HOUR),
          { files: 0, bytes: 0 },
          'a chunk put back is not removed',
        );
        assertSameBytes(await store.get(c.id), c.stored);
        assert.deepEqual(await listedIds(store), [hex(c.id)]);
        if (target.castr) assert.deepEqual(await target.castr.rawNames(store), [castrKey(c.id)], 'nothing left aside');
      },
    );

    withMovedAside('removeLeftovers keeps a copy written after the chunk was moved aside', async (store, c) => {
      const rewritten = randomBytes(900);
      await store.put(c.id, Buffer.from(rewritten));
      await store.removeLeftovers(Date.now() - HOUR);
      assertSameBytes(await store.get(c.id), rewritten);
      if (target.castr) assert.deepEqual(await target.castr.rawNames(store), [castrKey(c.id)], 'nothing left aside');
    });
  });

  describe('FramePlaces', () => {
    const withPlaces = capabilityTest('FramePlaces', CAPABILITY_GUARDS.FramePlaces);

    withPlaces(
      'frames read at the places given are the stored frames, in order, before and after flush',
      async (store) => {
        const chunks = [chunk(100), chunk(70_000), chunk(5000)];
        for (const c of chunks) await store.put(c.id, Buffer.from(c.stored));
        const asked = [chunks[2], chunks[0], chunks[1], chunks[0]];
        for (const when of ['before flush', 'after flush']) {
          if (when === 'after flush') await store.flush();
          const placed = store.locateFrames(asked.map((c) => c.id));
          const read = readFramesSync(placed.dir, placed.frames);
          let at = 0;
          asked.forEach((c, i) => {
            assertSameBytes(read.subarray(at, (at += placed.frames[i].length)), c.stored, `${when}: frame ${i}`);
            assert.equal(placed.frames[i].crc, frameCrc(c.stored), `${when}: CRC of frame ${i}`);
          });
          assert.equal(at, read.length);
        }
        const absent = chunk(200);
        assert.throws(() => store.locateFrames([chunks[0].id, absent.id]), isMissing);
      },
    );
  });

  describe('FrameReads', () => {
    const withFrames = capabilityTest('FrameReads', CAPABILITY_GUARDS.FrameReads);

    withFrames(
      'getFrames returns the frames asked for, in order, each with the CRC of its stored bytes',
      async (store) => {
        const chunks = [chunk(100), chunk(70_000), chunk(5000)];
        for (const c of chunks) await store.put(c.id, Buffer.from(c.stored));
        const data = compressible(50_000);
        const expected = Buffer.from(data); // encodeAndPut may take the caller's buffer
        const encodedId = sha256(expected);
        const encodedSize = await store.encodeAndPut(encodedId, data, 3);
        const asked = [chunks[2], chunks[0], chunks[1], chunks[0]];
        const assertFrames = async (when: string): Promise<void> => {
          const frames = await store.getFrames(asked.map((c) => c.id));
          assert.equal(frames.length, asked.length);
          frames.forEach((frame, i) => {
            assertSameBytes(frame.stored, asked[i].stored);
            assert.equal(frame.crc, frameCrc(asked[i].stored), `${when}: CRC of frame ${i}`);
          });
          const [encoded] = await store.getFrames([encodedId]);
          assert.equal(encoded.stored.length, encodedSize);
          assert.equal(encoded.crc, frameCrc(encoded.stored), `${when}: the CRC of the frame encodeAndPut wrote`);
          assertSameBytes(zstdDecompressSync(encoded.stored), expected);
        };
        await assertFrames('before flush');
        await store.flush();
        await assertFrames('after flush');
      },
    );

    withFrames('getFrames throws chunk-missing when a chunk asked for is absent', async (store) => {
      const [kept, gone] = [chunk(1000), chunk(2000)];
      await store.put(kept.id, Buffer.from(kept.stored));
      await store.put(gone.id, Buffer.from(gone.stored));
      await store.flush();
      await assert.rejects(store.getFrames([kept.id, randomBytes(32)]), isMissing, 'never stored');
      await store.delete(gone.id);
      await assert.rejects(store.getFrames([gone.id, kept.id]), isMissing, 'deleted');
    });

    withFrames('recordCrc gives a CRC to a frame that has none, and to no other', async (store) => {
      const [a, b] = [chunk(3000), chunk(4000)];
      await store.put(a.id, Buffer.from(a.stored));
      await store.put(b.id, Buffer.from(b.stored));
      await store.flush();
      const crcOf = async (id: Uint8Array): Promise<number | undefined> => (await store.getFrames([id]))[0].crc;
      await requiredHook(target, 'forgetCrc')(store, a.id);
      assert.equal(await crcOf(a.id), undefined);
      await store.recordCrc(a.id, frameCrc(a.stored));
      assert.equal(await crcOf(a.id), frameCrc(a.stored));
      await store.recordCrc(a.id, frameCrc(b.stored));
      assert.equal(await crcOf(a.id), frameCrc(a.stored), 'a CRC recorded later stays');
      await store.recordCrc(b.id, frameCrc(a.stored));
      assert.equal(await crcOf(b.id), frameCrc(b.stored), 'the CRC recorded when writing stays');
    });
  });

  describe('Compaction', () => {
    const withCompaction = capabilityTest('Compaction', CAPABILITY_GUARDS.Compaction);

    /** Stores 12 chunks, flushed, and deletes 9 of them. */
    const storeAndDeleteMost = async (store: ChunkStore): Promise<{ live: StoredChunk[]; deleted: StoredChunk[] }> => {
      const chunks = Array.from({ length: 12 }, (_, i) => chunk(20_000 + i));
      for (const c of chunks) await store.put(c.id, Buffer.from(c.stored));
      await store.flush();
      const live = chunks.slice(0, 3);
      const deleted = chunks.slice(3);
      for (const c of deleted) await store.delete(c.id);
      return { live, deleted };
    };

    withCompaction(
      'compact gives back the space of deleted chunks and keeps every live chunk readable',
      async (store) => {
        const { live, deleted } = await storeAndDeleteMost(store);
        const unflushed = chunk(9000);
        await store.put(unflushed.id, Buffer.from(unflushed.stored));
        const chunkFileBytes = requiredHook(target, 'chunkFileBytes');
        const before = await chunkFileBytes(store);
        const report = await store.compact(Date.now() + HOUR);
        const after = await chunkFileBytes(store);
        assert.ok(report.packs >= 1, `compacted ${report.packs} files`);
        assert.equal(report.reclaimedBytes, before - after, 'reports what it gave back');
        const deletedBytes = deleted.reduce((sum, c) => sum + c.stored.length, 0);
        assert.ok(
          report.reclaimedBytes >= deletedBytes,
          `gave back ${report.reclaimedBytes} bytes for ${deletedBytes} deleted`,
        );
        for (const c of [...live, unflushed]) assertSameBytes(await store.get(c.id), c.stored);
        for (const c of deleted) await assert.rejects(store.get(c.id), isMissing);
        assert.deepEqual(await listedIds(store), [...live, unflushed].map((c) => hex(c.id)).sort());
      },
    );

    withCompaction('compact leaves what was written after notAfter alone', async (store) => {
      const { live } = await storeAndDeleteMost(store);
      const chunkFileBytes = requiredHook(target, 'chunkFileBytes');
      const before = await chunkFileBytes(store);
      assert.deepEqual(await store.compact(Date.now() - HOUR), { packs: 0, reclaimedBytes: 0 });
      assert.equal(await chunkFileBytes(store), before);
      for (const c of live) assertSameBytes(await store.get(c.id), c.stored);
    });
  });

  describe('FreeSpace', () => {
    capabilityTest('FreeSpace', CAPABILITY_GUARDS.FreeSpace)('freeBytes is a whole number of bytes', async (store) => {
      // A castr directory is made by its first write; until then freeBytes fails (StorageFullGuard allows for that).
      const c = chunk(100);
      await store.put(c.id, Buffer.from(c.stored));
      const free = await store.freeBytes();
      assert.ok(Number.isSafeInteger(free) && free > 0, `freeBytes ${free}`);
    });
  });

  describe('WritePreparation', () => {
    capabilityTest('WritePreparation', CAPABILITY_GUARDS.WritePreparation)(
      'prepare may be called more than once, and writes work after it',
      async (store) => {
        store.prepare();
        store.prepare();
        const c = chunk(1000);
        await store.put(c.id, Buffer.from(c.stored));
        await store.flush();
        assertSameBytes(await store.get(c.id), c.stored);
      },
    );
  });
}
