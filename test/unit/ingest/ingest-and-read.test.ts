import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { assertSameBytes, collect } from '../../helpers/bytes.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes, readStoredFrames } from '../../../src/serving/nar-reader.ts';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { LOCAL_STORES, damageChunk } from '../../helpers/damage.ts';
import { NarwhalError } from '../../../src/errors.ts';
import { INGEST_BLOCKS } from '../../../src/ingest/nar-chunk-writer.ts';
import { bodyOf, narHashOf, pausedBody, realisticNar, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';

test('an ingested NAR reads back byte for byte, as frames and as plain bytes', async () => {
  const t = await tempNarwhal();
  try {
    const nar = await realisticNar('one');
    const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    assert.equal(record.narHash, narHashOf(nar));
    assert.equal(record.narSize, nar.length);
    assert.ok(record.chunkCount > 10, `chunks: ${record.chunkCount}`);
    const opened = (await openNar(t.nw, record.narHash))!;
    assertSameBytes(await collect(readNarBytes(t.nw, opened)), Buffer.from(nar));
    const frames = await collect(readStoredFrames(t.nw, opened));
    assert.equal(frames.length, record.storedSize);
    assertSameBytes(unzstd(frames), Buffer.from(nar));
    // Any byte range reads back the same bytes as the slice.
    for (const [start, end] of [
      [0, 1],
      [100, 70_000],
      [65_530, 300_000],
      [nar.length - 5, nar.length],
    ]) {
      assertSameBytes(
        await collect(readNarBytes(t.nw, opened, start, end)),
        Buffer.from(nar.subarray(start, end)),
        `${start}-${end}`,
      );
    }
  } finally {
    await t.close();
  }
});

test('a second NAR that shares content stores only its new chunks', async () => {
  const t = await tempNarwhal();
  try {
    await ingestNar(t.nw, bodyOf(await realisticNar('one')), { compression: 'none' });
    const before = await t.nw.meta.stats();
    await ingestNar(t.nw, bodyOf(await realisticNar('two, a little different')), { compression: 'none' });
    const after = await t.nw.meta.stats();
    assert.equal(after.nars, 2);
    assert.ok(after.chunks - before.chunks <= 2, `new chunks: ${after.chunks - before.chunks}`);
    // Ingesting the same NAR again changes nothing.
    await ingestNar(t.nw, bodyOf(await realisticNar('one')), { compression: 'none' });
    assert.deepEqual(await t.nw.meta.stats(), after);
  } finally {
    await t.close();
  }
});

test('uploads whose bodies stall, more of them than there are shared blocks, hold up no other upload', async () => {
  const t = await tempNarwhal();
  try {
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    const stalledNars = await Promise.all(
      Array.from({ length: INGEST_BLOCKS + 2 }, (_, i) => realisticNar(`stalled ${i}`)),
    );
    const reached: Promise<void>[] = [];
    const stalled = stalledNars.map((nar) => {
      let stalledHere!: () => void;
      reached.push(new Promise((resolve) => (stalledHere = resolve)));
      return ingestNar(t.nw, pausedBody(nar, 1_500_000, resumed, stalledHere), { compression: 'none' });
    });
    // Every stalled upload has taken in what it was sent and holds the block it is filling.
    await Promise.all(reached);
    await delay(200);
    const nar = await realisticNar('goes on meanwhile');
    const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    assert.equal(record.narHash, narHashOf(nar));
    assertSameBytes(await collect(readNarBytes(t.nw, (await openNar(t.nw, record.narHash))!)), Buffer.from(nar));

    resume();
    const records = await Promise.all(stalled);
    for (const [i, stalledRecord] of records.entries()) {
      assertSameBytes(
        await collect(readNarBytes(t.nw, (await openNar(t.nw, stalledRecord.narHash))!)),
        Buffer.from(stalledNars[i]),
      );
    }
  } finally {
    await t.close();
  }
});

test('an invalid NAR is rejected and leaves no NAR record', async () => {
  const t = await tempNarwhal();
  try {
    const nar = await realisticNar('bad');
    const truncated = nar.subarray(0, nar.length - 8);
    await assert.rejects(
      ingestNar(t.nw, bodyOf(truncated), { compression: 'none' }),
      (err: unknown) => err instanceof NarwhalError && err.code === 'bad-nar',
    );
    assert.equal((await t.nw.meta.stats()).nars, 0);
  } finally {
    await t.close();
  }
});

test('a body whose hash differs from the one in its URL is rejected', async () => {
  const t = await tempNarwhal();
  try {
    const nar = await realisticNar('x');
    await assert.rejects(
      ingestNar(t.nw, bodyOf(nar), {
        compression: 'none',
        upload: { fileHash: new Uint8Array(32), fileHashText: 'sha256:000', suffix: '' },
      }),
      (err: unknown) => err instanceof NarwhalError && err.code === 'hash-mismatch',
    );
    assert.equal((await t.nw.meta.stats()).nars, 0);
  } finally {
    await t.close();
  }
});

test('a decompressed size above the limit is refused', async () => {
  const t = await tempNarwhal({ maxNarSize: 1_000_000 });
  try {
    await assert.rejects(
      ingestNar(t.nw, bodyOf(await realisticNar('big')), { compression: 'none' }),
      (err: unknown) => err instanceof NarwhalError && err.code === 'too-large',
    );
  } finally {
    await t.close();
  }
});

for (const { name, storage } of LOCAL_STORES)
  test(`${name}: a NAR with a missing chunk cannot be opened, and a corrupt chunk never reaches the reader`, async () => {
    const t = await tempNarwhal({}, storage);
    try {
      const nar = await realisticNar('damage');
      const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
      const store = t.nw.chunks;
      const entries = [...chunkEntries(record.chunkTable)];
      const victim = entries[3];
      const stored = await store.get(victim.id);
      await damageChunk(store, victim.id, 'delete');
      await assert.rejects(
        openNar(t.nw, record.narHash),
        (err: unknown) => err instanceof NarwhalError && err.code === 'chunk-missing',
      );
      // From then on the NAR is flagged damaged and not offered.
      assert.equal(await openNar(t.nw, record.narHash), undefined);
      // A file with the right name but wrong content: decompresses (it is a valid frame of another chunk) but fails its hash.
      await store.put(victim.id, await store.get(entries[5].id));
      const opened = (await t.nw.meta.getNar(record.narHash))!;
      await assert.rejects(
        collect(readNarBytes(t.nw, opened)),
        (err: unknown) => err instanceof NarwhalError && err.code === 'chunk-corrupt',
      );
      // A re-push heals it.
      await store.delete(victim.id);
      await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
      assert.deepEqual(await store.get(victim.id), stored);
      assertSameBytes(await collect(readNarBytes(t.nw, (await openNar(t.nw, record.narHash))!)), Buffer.from(nar));
    } finally {
      await t.close();
    }
  });

/** The zstd CLI as the oracle: Node's zstd stops after the first frame, real clients do not. */
