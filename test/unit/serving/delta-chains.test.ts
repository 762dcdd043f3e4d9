/**
 * Chains of deltas two deep (src/serving/chunk-content.ts, decodeDeltaWithChain): the oldest of
 * three versions is stored as deltas of the middle one, itself stored as deltas of the newest.
 * Every way a NAR is read gives its exact bytes, on a pack store (frames with CRCs: a chain whose
 * frames all match needs no hash check) and on a castr directory (no CRCs: each chunk hashed),
 * and a base damaged at the bottom of a chain is named and flagged.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkEntries, type ChunkTableEntry } from '../../../src/chunking/chunk-table.ts';
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
  describe(`chains of deltas two deep, read through the server (${store.name})`, () => {
    let t: TempNarwhal;
    let base: string;
    const nars = [versionNar(1000, 200_000), versionNar(2000, 200_000), versionNar(3000, 200_000)];
    const records: NarRecord[] = [];
    const hashParts = ['a', 'b', 'c'].map((letter) => letter.repeat(32));
    /** Per version, the chunk each of its delta chunks (by hex id) is built on. */
    const bases: Map<string, Uint8Array>[] = [];

    const url = (i: number, suffix: string): string => `${base}/nar/${records[i].narHash.slice(7)}.nar${suffix}`;
    const fileSize = async (i: number): Promise<number> =>
      Number(/^FileSize: (\d+)$/m.exec(await (await fetch(`${base}/${hashParts[i]}.narinfo`)).text())![1]);
    const download = async (i: number): Promise<Buffer> =>
      Buffer.from(await (await fetch(url(i, '.zst'))).arrayBuffer());

    /** Stores each chunk only version `older` has as a delta of the chunk at its place in version `older + 1`. */
    const storeAsDeltas = async (older: number): Promise<void> => {
      const newer: ChunkTableEntry[] = [...chunkEntries(records[older + 1].chunkTable)];
      const newerIds = new Set(newer.map((entry) => hex(entry.id)));
      const built = new Map<string, Uint8Array>();
      const recorded = [];
      for (const [i, entry] of [...chunkEntries(records[older].chunkTable)].entries()) {
        if (newerIds.has(hex(entry.id)) || i >= newer.length || built.has(hex(entry.id))) continue;
        const baseEntry = newer[i];
        const content = nars[older].subarray(entry.start, entry.end);
        const baseContent = nars[older + 1].subarray(baseEntry.start, baseEntry.end);
        const stored = encodeDelta(content, [{ id: baseEntry.id, content: baseContent }], 9);
        const oldStoredSize = (await t.nw.meta.getChunk(entry.id))!.storedSize;
        const storedSize = stored.length; // put may take the buffer over
        // As the delta pass does: the base reserved before the write (recordDeltas checks it).
        assert.ok(await t.nw.meta.reserveDeltaBases(entry.id, [baseEntry.id]));
        await t.nw.chunks.put(entry.id, stored);
        built.set(hex(entry.id), baseEntry.id);
        const depth = 1 + (bases[older + 1]?.has(hex(baseEntry.id)) ? 1 : 0);
        recorded.push({ id: entry.id, oldStoredSize, storedSize, bases: [baseEntry.id], depth, level: 9 });
      }
      await t.nw.chunks.flush();
      assert.equal(await t.nw.meta.recordDeltas(recorded), built.size);
      bases[older] = built;
    };

    let served: ServedVersions;

    before(async () => {
      served = await serveVersions(store.storage, nars, hashParts);
      ({ t, base } = served);
      records.push(...served.records);
      await storeAsDeltas(1);
      await storeAsDeltas(0);
    });

    after(async () => {
      await served.close();
    });

    test('some chunks of the oldest version lie at the top of a chain two deep', async () => {
      const deep = [...bases[0].values()].filter((baseId) => bases[1].has(hex(baseId)));
      assert.ok(deep.length >= 3, `chains two deep: ${deep.length}`);
      for (const baseId of deep) assert.equal((await t.nw.meta.deltaChain(baseId)).depth, 1);
    });

    test('.nar.zst of every version decodes to its NAR, exactly FileSize bytes long, read twice', async () => {
      for (const round of [1, 2]) {
        for (const i of [0, 1, 2]) {
          const frames = await download(i);
          assert.equal(frames.length, await fileSize(i), `version ${i}, round ${round}`);
          assertSameBytes(unzstd(frames), nars[i]);
        }
      }
    });

    test('.nar whole, and by Ranges that cut through deltas', async () => {
      assertSameBytes(Buffer.from(await (await fetch(url(0, ''))).arrayBuffer()), nars[0]);
      const size = nars[0].length;
      for (const [start, end] of [
        [1, 2],
        [70_000, 900_000],
        [size - 300_000, size - 1],
      ]) {
        const answer = await fetch(url(0, ''), { headers: { Range: `bytes=${start}-${end}` } });
        assert.equal(answer.status, 206);
        assertSameBytes(Buffer.from(await answer.arrayBuffer()), nars[0].subarray(start, end + 1));
      }
    });

    test('a base damaged at the bottom of a chain is named, and the NARs built on it answer 404', async () => {
      const [top, middle] = [...bases[0]].find(([, baseId]) => bases[1].has(hex(baseId)))!;
      const bottom = bases[1].get(hex(middle))!;
      const whole = await fileSize(0);
      await damageChunk(t.nw.chunks, bottom, 'flip');
      // The check workers keep the contents of bases they decoded (right content, whatever the disk
      // holds since): fresh ones decode from the frames.
      await stopCheckWorkers();
      const answer = await fetch(url(0, '.zst')).then(
        (res) => res.arrayBuffer().then((body) => body.byteLength),
        () => -1,
      );
      assert.notEqual(answer, whole, 'the download breaks off');
      assert.notEqual((await t.nw.meta.getChunk(bottom))!.damagedAt, null, 'the damaged base is flagged');
      assert.notEqual((await t.nw.meta.getChunk(Buffer.from(top, 'hex')))!.damagedAt, null, 'and the chunk read');
      for (const hashPart of hashParts)
        assert.equal((await fetch(`${base}/${hashPart}.narinfo`)).status, 404, 'every version uses the base');
    });
  });
}
