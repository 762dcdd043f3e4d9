import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertSameBytes, collect } from '../../helpers/bytes.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { openNar, readStoredFrames } from '../../../src/serving/nar-reader.ts';
import { readCheckedChunk } from '../../../src/serving/chunk-damage.ts';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { NarwhalError } from '../../../src/errors.ts';
import { LOCAL_STORES, damageChunk } from '../../helpers/damage.ts';
import { bodyOf, realisticNar, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';

const castr = LOCAL_STORES.find((store) => store.name === 'castr directory')!;
const packs = LOCAL_STORES.find((store) => store.name === 'pack store')!;

test('a store that records no CRC (castr directory): a download remembers the frames it checked, and one damaged since is checked in full again', async () => {
  const t = await tempNarwhal({}, castr.storage);
  try {
    const record = await ingestNar(t.nw, bodyOf(await realisticNar('checked frames')), { compression: 'none' });
    const entries = [...chunkEntries(record.chunkTable)];
    for (const { id } of entries)
      assert.equal(t.nw.memos.checkedFrames.checkedBefore(id, await t.nw.chunks.get(id)), false);
    await collect(readStoredFrames(t.nw, (await openNar(t.nw, record.narHash))!));
    for (const { id } of entries)
      assert.equal(t.nw.memos.checkedFrames.checkedBefore(id, await t.nw.chunks.get(id)), true);

    const victim = entries[2];
    await damageChunk(t.nw.chunks, victim.id, 'flip');
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(victim.id, await t.nw.chunks.get(victim.id)), false);
    await assert.rejects(
      collect(readStoredFrames(t.nw, record)),
      (err: unknown) => err instanceof NarwhalError && err.code === 'chunk-corrupt',
    );
  } finally {
    await t.close();
  }
});

test('remembered frames are told apart by chunk and by content, and the least recently read go first', async () => {
  const t = await tempNarwhal();
  try {
    const id = (n: number): Uint8Array => new Uint8Array(32).fill(n);
    const frame = new Uint8Array(1000).fill(7);
    t.nw.memos.checkedFrames.remember(id(1), frame);
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(1), frame), true);
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(2), frame), false);
    const changed = frame.slice();
    changed[500] ^= 1;
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(1), changed), false);
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(1), frame.subarray(0, 999)), false);

    // 65,536 are kept. id(1) was read last of these three, so id(3) is forgotten first.
    t.nw.memos.checkedFrames.remember(id(3), frame);
    t.nw.memos.checkedFrames.remember(id(4), frame);
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(1), frame), true);
    const filler = new Uint8Array(32);
    const view = new DataView(filler.buffer);
    for (let i = 0; i < 65_536 - 3 + 1; i++) {
      view.setUint32(0, 0xff000000 + i);
      t.nw.memos.checkedFrames.remember(filler, frame);
    }
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(3), frame), false);
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(4), frame), true);
    assert.equal(t.nw.memos.checkedFrames.checkedBefore(id(1), frame), true);
  } finally {
    await t.close();
  }
});

test('a pack store: each frame is trusted by the CRC it was written with, from the first download on; a changed one is checked in full', async () => {
  const t = await tempNarwhal({}, packs.storage);
  try {
    const record = await ingestNar(t.nw, bodyOf(await realisticNar('frame crc')), { compression: 'none' });
    const entries = [...chunkEntries(record.chunkTable)];
    const victim = entries[1];
    await damageChunk(t.nw.chunks, victim.id, 'flip');
    await assert.rejects(
      collect(readStoredFrames(t.nw, record)),
      (err: unknown) => err instanceof NarwhalError && err.code === 'chunk-corrupt',
      'damaged before any download',
    );

    // A frame written with bytes that do not decode at all has their CRC: it is passed on as
    // written (the store's writers are trusted to write only frames of their id), while a read
    // that wants the chunk's bytes decompresses it and fails.
    const other = await ingestNar(t.nw, bodyOf(await realisticNar('frame crc, untouched')), { compression: 'none' });
    const trusted = [...chunkEntries(other.chunkTable)][0];
    const garbage = new Uint8Array(trusted.end - trusted.start).fill(0xab);
    await t.nw.chunks.put(trusted.id, garbage.slice());
    await t.nw.chunks.flush();
    assertSameBytes(
      (await readCheckedChunk(t.nw, trusted, false)).stored,
      garbage,
      'the frame is passed on as written',
    );
    await assert.rejects(
      readCheckedChunk(t.nw, trusted, true),
      (err: unknown) => err instanceof NarwhalError && err.code === 'chunk-corrupt',
    );
  } finally {
    await t.close();
  }
});

for (const { name, storage } of LOCAL_STORES)
  for (const damage of ['flip', 'delete'] as const)
    test(`${name}: chunks read together, one of them damaged (${damage}): the download fails and only that chunk is flagged`, async () => {
      const t = await tempNarwhal({}, storage);
      try {
        const record = await ingestNar(t.nw, bodyOf(await realisticNar('batch damage')), { compression: 'none' });
        const entries = [...chunkEntries(record.chunkTable)];
        assert.ok(entries.length >= 6);
        const victim = entries[3];
        await damageChunk(t.nw.chunks, victim.id, damage);
        const code = damage === 'flip' ? 'chunk-corrupt' : 'chunk-missing';
        await assert.rejects(
          collect(readStoredFrames(t.nw, record)),
          (err: unknown) => err instanceof NarwhalError && err.code === code,
        );
        for (const { id } of entries) {
          const damaged = (await t.nw.meta.getChunk(id))!.damagedAt !== null;
          assert.equal(damaged, id === victim.id, `chunk ${entries.findIndex((e) => e.id === id)}`);
        }
      } finally {
        await t.close();
      }
    });
