/**
 * Reads that overlap the delta pass (issue 19, point 5): a `.nar.zst` opened while its chunks were
 * plain and read after they became deltas, or while a delta is written but not yet recorded,
 * still sends exactly its Content-Length of one valid zstd stream; and a NAR whose delta chunk
 * lost a base is refused before any byte is sent, like one that lost a chunk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStored } from '../../../src/delta/stored-form.ts';
import { isNarwhalError } from '../../../src/errors.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { encodeDeltas } from '../../../src/maintenance/delta-encode.ts';
import { backfillSketches } from '../../../src/maintenance/sketch-backfill.ts';
import { openNar, readStoredFrames } from '../../../src/serving/nar-reader.ts';
import { assertSameBytes, collect } from '../../helpers/bytes.ts';
import { damageChunk } from '../../helpers/damage.ts';
import { bodyOf, narHashOf, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

/** An old and a new version, ingested and sketched, so that the pass stores old chunks as deltas. */
async function twoVersions(t: TempNarwhal): Promise<Uint8Array[]> {
  const nars = [versionNar(1000, 200_000), versionNar(2000, 200_000)];
  for (const nar of nars) await ingestNar(t.nw, bodyOf(nar), { compression: 'none' });
  await backfillSketches(t.nw);
  return nars;
}

/** The whole `.nar.zst` of a NAR opened now: exactly its stored size, decoding to the NAR. */
async function assertZstWhole(t: TempNarwhal, nar: Uint8Array): Promise<void> {
  const opened = (await openNar(t.nw, narHashOf(nar)))!;
  const frames = await collect(readStoredFrames(t.nw, opened));
  assert.equal(frames.length, opened.storedSize);
  assertSameBytes(unzstd(frames), nar);
}

test('a .nar.zst read while its chunks become deltas sends its Content-Length of valid zstd', async () => {
  const t = await tempNarwhal();
  try {
    const [old, fresh] = await twoVersions(t);
    const opened = (await openNar(t.nw, narHashOf(old)))!;
    const reading = readStoredFrames(t.nw, opened);
    const first = await reading.next(); // begun: the rest of the NAR is read after the pass
    assert.equal(first.done, false);

    // While the pass has written its deltas but not recorded them, a fresh read is whole too.
    const record = t.nw.meta.recordDeltas.bind(t.nw.meta);
    let between = 0;
    t.nw.meta.recordDeltas = async (chunks) => {
      if (between++ === 0) await assertZstWhole(t, old);
      return record(chunks);
    };
    const report = await encodeDeltas(t.nw);
    t.nw.meta.recordDeltas = record;
    assert.ok(report.encoded > 0 && between > 0);

    const frames = Buffer.concat([first.value as Uint8Array, await collect(reading)]);
    assert.equal(frames.length, opened.storedSize, 'exactly the Content-Length promised');
    assertSameBytes(unzstd(frames), old);
    await assertZstWhole(t, old);
    await assertZstWhole(t, fresh);
  } finally {
    await t.close();
  }
});

test('a NAR whose delta chunk lost its base is refused before any byte, and flagged damaged', async () => {
  const t = await tempNarwhal();
  try {
    const [old] = await twoVersions(t);
    assert.ok((await encodeDeltas(t.nw)).encoded > 0);
    const record = (await t.nw.meta.getNar(narHashOf(old)))!;
    const delta = (await t.nw.meta.narChunks(record.id)).find((c) => c.encoding === 'delta')!;
    const form = parseStored(await t.nw.chunks.get(delta.id));
    assert.equal(form.kind, 'delta');
    const base = form.kind === 'delta' ? form.bases[0] : new Uint8Array(0);
    assert.ok(
      (await t.nw.meta.narDeltaBases(record.id)).some((id) => hex(id) === hex(base)),
      'the NAR names the base',
    );
    await damageChunk(t.nw.chunks, base, 'delete');
    await assert.rejects(openNar(t.nw, record.narHash), (err) => isNarwhalError(err, 'chunk-missing'));
    assert.notEqual((await t.nw.meta.getNar(record.narHash))!.damagedAt, null, 'its NAR is flagged damaged');
    assert.equal(await openNar(t.nw, record.narHash), undefined, 'and no longer offered');
  } finally {
    await t.close();
  }
});
