/**
 * Runs of delta chunks decoded together (src/serving/chunk-content.ts, decodeDeltasWithChains):
 * a `.nar.zst` whose chunks are nearly all deltas sends its exact bytes, and one damaged delta
 * among its neighbours of a run breaks the download, is flagged itself, and leaves the other
 * chunks of its run unflagged.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { encodeDelta } from '../../../src/delta/stored-form.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import { stopCheckWorkers } from '../../../src/serving/chunk-check.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { damageChunk, LOCAL_STORES } from '../../helpers/damage.ts';
import type { TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { serveVersions, type ServedVersions } from '../../helpers/served-versions.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

for (const store of LOCAL_STORES) {
  describe(`runs of delta chunks read through the server (${store.name})`, () => {
    let t: TempNarwhal;
    let base: string;
    const nars = [versionNar(1000, 100_000), versionNar(2000, 100_000)];
    const records: NarRecord[] = [];
    const hashParts = ['f', 'g'].map((letter) => letter.repeat(32));
    /** The chunks of the older version stored as deltas, in NAR order. */
    const deltas: Uint8Array[] = [];

    let narUrl = '';

    let served: ServedVersions;

    before(async () => {
      served = await serveVersions(store.storage, nars, hashParts);
      ({ t, base } = served);
      records.push(...served.records);
      // Each chunk only the older version has, as a delta of the chunk at its place in the newer.
      const newer = [...chunkEntries(records[1].chunkTable)];
      const newerIds = new Set(newer.map((entry) => hex(entry.id)));
      const recorded = [];
      for (const [i, entry] of [...chunkEntries(records[0].chunkTable)].entries()) {
        if (newerIds.has(hex(entry.id)) || i >= newer.length || deltas.some((id) => hex(id) === hex(entry.id)))
          continue;
        const baseEntry = newer[i];
        const stored = encodeDelta(
          nars[0].subarray(entry.start, entry.end),
          [{ id: baseEntry.id, content: nars[1].subarray(baseEntry.start, baseEntry.end) }],
          3,
        );
        const oldStoredSize = (await t.nw.meta.getChunk(entry.id))!.storedSize;
        const storedSize = stored.length;
        assert.ok(await t.nw.meta.reserveDeltaBases(entry.id, [baseEntry.id]));
        await t.nw.chunks.put(entry.id, stored);
        deltas.push(entry.id);
        recorded.push({ id: entry.id, oldStoredSize, storedSize, bases: [baseEntry.id], depth: 1, level: 3 });
      }
      await t.nw.chunks.flush();
      assert.equal(await t.nw.meta.recordDeltas(recorded), deltas.length);
      narUrl = `${base}/nar/${records[0].narHash.slice(7)}.nar.zst`;
    });

    after(async () => {
      await served.close();
    });

    test('a NAR of runs of deltas is sent whole, exactly FileSize bytes long', async () => {
      assert.ok(deltas.length >= 20, `deltas: ${deltas.length}`);
      const fileSize = Number(
        /^FileSize: (\d+)$/m.exec(await (await fetch(`${base}/${hashParts[0]}.narinfo`)).text())![1],
      );
      for (const round of [1, 2]) {
        const frames = Buffer.from(await (await fetch(narUrl)).arrayBuffer());
        assert.equal(frames.length, fileSize, `round ${round}`);
        assertSameBytes(unzstd(frames), nars[0]);
      }
    });

    test('one damaged delta in a run breaks the download and is flagged alone', async () => {
      const damaged = deltas[Math.floor(deltas.length / 2)];
      await damageChunk(t.nw.chunks, damaged, 'flip');
      await stopCheckWorkers();
      const whole = await fetch(narUrl)
        .then((res) => res.arrayBuffer())
        .then(
          () => true,
          () => false,
        );
      assert.equal(whole, false, 'the download breaks off');
      assert.notEqual((await t.nw.meta.getChunk(damaged))!.damagedAt, null, 'the damaged delta is flagged');
      for (const id of deltas.filter((other) => other !== damaged))
        assert.equal((await t.nw.meta.getChunk(id))!.damagedAt, null, `delta ${hex(id)} is not flagged`);
      assert.equal((await fetch(`${base}/${hashParts[0]}.narinfo`)).status, 404);
      assert.equal((await fetch(`${base}/${hashParts[1]}.narinfo`)).status, 200, 'the newer version is whole');
    });
  });
}
