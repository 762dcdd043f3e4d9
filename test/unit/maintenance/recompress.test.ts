import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes, readStoredFrames } from '../../../src/serving/nar-reader.ts';
import { MIN_SAVING, recompressChunks, RECOMPRESS_LEASE } from '../../../src/maintenance/recompress.ts';
import { scheduleRecompression } from '../../../src/maintenance/recompress-scheduler.ts';
import { renderNarinfo } from '../../../src/serving/render-narinfo.ts';
import { verifyStore } from '../../../src/maintenance/verify.ts';
import { checkChunk } from '../../../src/serving/chunk-check.ts';
import { encodeChunk } from '../../../src/storage/chunk-codec.ts';
import { parseNarinfo } from '../../../src/nix/narinfo.ts';
import type { Narwhal } from '../../../src/context/narwhal.ts';
import { assertSameBytes, collect } from '../../helpers/bytes.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';
import { addPath, bodyOf, realisticNar, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { seededBytes, versionNar } from '../../helpers/test-data.ts';
import { writeNar } from '../../../src/nix/nar-writer.ts';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { chunkFrame } from '../../helpers/pack-store-contents.ts';
import { planReads } from '../../../src/storage/pack-files.ts';

/** The sum of the sizes of the chunk files, as the store has them. */
async function fileBytes(nw: Narwhal): Promise<number> {
  let total = 0;
  for await (const file of nw.chunks.list()) total += file.storedSize;
  return total;
}

test('recompression shrinks the chunk files, keeps every NAR readable, and moves FileSize with them', async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  try {
    const narA = await realisticNar('A');
    const narB = await realisticNar('B, sharing the binary with A');
    const a = await ingestNar(t.nw, bodyOf(narA), { compression: 'none' });
    const b = await ingestNar(t.nw, bodyOf(narB), { compression: 'none' });
    const hashA = await addPath(t.nw, 'main', a);
    const before = await t.nw.meta.stats();
    assert.equal(await fileBytes(t.nw), before.storedBytes);
    // A reader that opened A before the recompression promised its old length.
    const openedEarly = (await openNar(t.nw, a.narHash))!;

    const report = await recompressChunks(t.nw, { level: 9, deltas: true });
    assert.equal(report.chunks + report.deltas, before.chunks, "A's chunk like one of B's is stored as a delta");
    assert.ok(
      report.rewritten > before.chunks / 2,
      `most chunks shrink from level 1 to 9 (${report.rewritten} of ${before.chunks})`,
    );
    const after = await t.nw.meta.stats();
    assert.equal(after.storedBytes, report.bytesAfter);
    assert.equal(before.storedBytes - after.storedBytes, report.bytesBefore - report.bytesAfter);
    assert.ok(after.storedBytes < before.storedBytes);
    assert.equal(await fileBytes(t.nw), after.storedBytes, 'records match the files');

    for (const [record, nar] of [
      [a, narA],
      [b, narB],
    ] as const) {
      const opened = (await openNar(t.nw, record.narHash))!;
      assert.ok(opened.storedSize < record.storedSize, 'the NAR stored size followed its chunks');
      const frames = await collect(readStoredFrames(t.nw, opened));
      assert.equal(frames.length, opened.storedSize);
      assertSameBytes(unzstd(frames), nar);
      assertSameBytes(await collect(readNarBytes(t.nw, opened)), nar);
    }
    const info = parseNarinfo((await renderNarinfo(t.nw, (await t.nw.meta.getCache('main'))!, hashA))!);
    assert.equal(info.fileSize, (await openNar(t.nw, a.narHash))!.storedSize);

    // The early reader still gets exactly the length it promised, and a valid zstd stream.
    const late = await collect(readStoredFrames(t.nw, openedEarly));
    assert.equal(late.length, a.storedSize);
    assertSameBytes(unzstd(late), narA);

    const verify = await verifyStore(t.nw);
    assert.deepEqual([verify.chunks.corrupt, verify.chunks.missing, verify.nars.damaged], [0, 0, 0]);

    const second = await recompressChunks(t.nw, { level: 9 });
    assert.deepEqual([second.chunks, second.rewritten], [0, 0], 'every chunk is done: a second run reads nothing');
    const higher = await recompressChunks(t.nw, { level: 12 });
    assert.equal(higher.chunks, 0, 'a chunk is recompressed once, whatever the level asked later');
  } finally {
    await t.close();
  }
});

test('recompression: a frame is replaced only when it saves MIN_SAVING bytes; runs exclude each other; shouldStop ends a run early', async () => {
  const t = await tempNarwhal({ zstdLevel: 19 });
  try {
    const nar = await realisticNar('already at 19');
    const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    const before = await t.nw.meta.stats();

    assert.ok(await t.nw.meta.tryAcquireLease(RECOMPRESS_LEASE, 'someone-else', 60_000));
    const busy = await recompressChunks(t.nw, { level: 19 });
    assert.ok(busy.busy, 'another holder: nothing done');
    assert.equal(busy.chunks, 0);
    await t.nw.meta.releaseLease(RECOMPRESS_LEASE, 'someone-else');

    const stopped = await recompressChunks(t.nw, { level: 19, shouldStop: () => true });
    assert.deepEqual([stopped.stopped, stopped.chunks], [true, 0]);

    const report = await recompressChunks(t.nw, { level: 19 });
    assert.equal(report.chunks, before.chunks);
    assert.equal(report.rewritten, 0, `level 19 again saves less than ${MIN_SAVING} bytes a chunk`);
    assert.deepEqual(await t.nw.meta.stats(), before);
    assertSameBytes(await collect(readNarBytes(t.nw, (await openNar(t.nw, record.narHash))!)), nar);
  } finally {
    await t.close();
  }
});

test('recompression: a file rewritten smaller by a run that crashed before recording it is served, verified and then recorded', async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  try {
    const nar = await realisticNar('crash between file and record');
    const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    const [victim] = await t.nw.meta.narChunks(record.id);
    const data = (await checkChunk(victim.id, await t.nw.chunks.get(victim.id), victim.size, true)).data!;
    const smaller = await encodeChunk(data, 19);
    assert.ok(smaller.length + 8 <= victim.storedSize);
    await t.nw.chunks.put(victim.id, smaller);

    const opened = (await openNar(t.nw, record.narHash))!;
    const frames = await collect(readStoredFrames(t.nw, opened));
    assert.equal(frames.length, record.storedSize, 'the promised length, padded');
    assertSameBytes(unzstd(frames), nar);
    const verify = await verifyStore(t.nw);
    assert.deepEqual([verify.chunks.corrupt, verify.nars.damaged], [0, 0]);

    await recompressChunks(t.nw, { level: 1 });
    assert.equal(
      (await t.nw.meta.getChunk(victim.id))!.storedSize,
      (await t.nw.chunks.storedSize(victim.id))!,
      'recorded as found',
    );
    const now = (await openNar(t.nw, record.narHash))!;
    assert.equal(now.storedSize, record.storedSize - (victim.storedSize - (await t.nw.chunks.storedSize(victim.id))!));
    assert.equal((await collect(readStoredFrames(t.nw, now))).length, now.storedSize);
  } finally {
    await t.close();
  }
});

test('the server schedule recompresses once uploads have been idle for the given time', async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  const logged: string[] = [];
  const schedule = scheduleRecompression(t.nw, { level: 9, idleMs: 300, log: (line) => logged.push(line) });
  try {
    const nar = await realisticNar('scheduled');
    const record = await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
    const before = (await t.nw.meta.stats()).storedBytes;
    for (let waited = 0; logged.length === 0 && waited < 20_000; waited += 100) await delay(100);
    assert.match(logged.join('\n'), /^recompress: sketched \d+ chunks; recompressed \d+ chunks/, 'sketches first');
    assert.ok((await t.nw.meta.stats()).storedBytes < before);
    assertSameBytes(await collect(readNarBytes(t.nw, (await openNar(t.nw, record.narHash))!)), nar);
  } finally {
    await schedule.stop();
    await t.close();
  }
});

test('the server logs a run whose only work was storing deltas', async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  try {
    for (const seed of [1000, 2000]) await ingestNar(t.nw, bodyOf(versionNar(seed, 200_000)), { compression: 'none' });
    await recompressChunks(t.nw, { level: 9 }); // sketched and recompressed: only deltas are left to do
    const logged: string[] = [];
    const schedule = scheduleRecompression(t.nw, {
      level: 9,
      idleMs: 300,
      deltas: true,
      log: (line) => logged.push(line),
    });
    try {
      for (let waited = 0; logged.length === 0 && waited < 20_000; waited += 100) await delay(100);
    } finally {
      await schedule.stop();
    }
    assert.match(
      logged.join('\n'),
      /^recompress: \d+ of \d+ chunks examined stored as deltas \(\d+ on bases by place\); recompressed 0 chunks/,
    );
  } finally {
    await t.close();
  }
});

test('a delta pass that leaves a fifth of a large pack dead gives that space back', async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  const packSizes = async (): Promise<number[]> => {
    const dir = join(t.dir, 'chunks', 'packs');
    return Promise.all((await readdir(dir)).map(async (name) => (await stat(join(dir, name))).size));
  };
  try {
    // Four versions apart by a byte every 300 kB, and data no delta touches, so that the pack is
    // not a small one (those are compacted anyway).
    const nars = [writeNar({ type: 'regular', contents: seededBytes(2_500_000, 7) })];
    for (const seed of [1000, 2000, 3000, 4000]) nars.push(versionNar(seed, 300_000));
    const records = [];
    for (const nar of nars) records.push(await ingestNar(t.nw, bodyOf(nar), { compression: 'none' }));
    await recompressChunks(t.nw, { level: 9 }); // all frames rewritten and compacted: only deltas are left to do
    const before = await packSizes();
    assert.equal(before.length, 1);
    const report = await recompressChunks(t.nw, { level: 9, deltas: true });
    const saved = report.bytesBefore - report.bytesAfter;
    assert.ok(saved > 0.1 * before[0] && saved < 0.25 * before[0], `the pass freed ${saved} of ${before[0]} bytes`);
    const after = (await packSizes()).reduce((a, b) => a + b, 0);
    assert.ok(after <= before[0] - 0.9 * saved, `packs ${before[0]} -> ${after} bytes`);
    for (const [i, record] of records.entries())
      assertSameBytes(await collect(readNarBytes(t.nw, (await openNar(t.nw, record.narHash))!)), nars[i]);
  } finally {
    await t.close();
  }
});

test("recompression writes a NAR's frames in the NAR's order, so that reading it takes a few long reads", async () => {
  const t = await tempNarwhal({ zstdLevel: 1 });
  try {
    // Two NARs apart in every chunk: a walk by chunk id would interleave their frames.
    const records = [];
    for (const seed of [1, 2])
      records.push(await ingestNar(t.nw, bodyOf(versionNar(seed, 20_000)), { compression: 'none' }));
    const report = await recompressChunks(t.nw, { level: 9 });
    for (const record of records) {
      const nar = (await t.nw.meta.getNar(record.narHash))!;
      const frames = [...chunkEntries(nar.chunkTable)].map((entry) => {
        const { path, offset, length } = chunkFrame(join(t.dir, 'chunks'), entry.id);
        return { pack: path, offset, length };
      });
      const reads = planReads(frames).length;
      const kept = 2 * frames.length - report.rewritten; // not worth rewriting, of either NAR at most
      assert.ok(
        report.rewritten > frames.length,
        `most frames rewritten (${report.rewritten} of ${2 * frames.length})`,
      );
      assert.ok(reads <= kept + 1, `${reads} reads for ${frames.length} frames, ${kept} not rewritten`);
    }
  } finally {
    await t.close();
  }
});
