/**
 * The background pass that stores older chunks as deltas of newer ones (delta-encode.ts): what it
 * rewrites, that every NAR still reads back exact at its stored size, chains never beyond
 * MAX_DELTA_DEPTH, and runs cut short finished or undone by the next.
 */
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { zstdDecompressSync } from 'node:zlib';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { encodeDelta, parseStored } from '../../../src/delta/stored-form.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import {
  encodeDeltas,
  type DeltaEncodeOptions,
  type DeltaEncodeReport,
} from '../../../src/maintenance/delta-encode.ts';
import { PLACE_CHUNKS } from '../../../src/maintenance/delta-bases.ts';
import { backfillSketches } from '../../../src/maintenance/sketch-backfill.ts';
import { verifyStore } from '../../../src/maintenance/verify.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import { MAX_DELTA_DEPTH } from '../../../src/serving/chunk-content.ts';
import { readNarBytes, readStoredFrames } from '../../../src/serving/nar-reader.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { damageChunk } from '../../helpers/damage.ts';
import { addPath, bodyOf, randomHashPart, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');
const STRIDE = 200_000;

interface Version {
  nar: Uint8Array;
  record: NarRecord;
}

async function ingestVersion(t: TempNarwhal, seed: number, stride = STRIDE): Promise<Version> {
  const nar = versionNar(seed, stride);
  return { nar, record: await ingestNar(t.nw, bodyOf(nar), { compression: 'none' }) };
}

/** A byte changed every 24 bytes from `offset` on; offsets 0 and 12 give versions that differ every 12 bytes. */
const SCRAMBLE_STRIDE = 24;

async function encode(t: TempNarwhal, options: DeltaEncodeOptions = {}): Promise<DeltaEncodeReport> {
  await backfillSketches(t.nw);
  return encodeDeltas(t.nw, options);
}

const ids = (record: NarRecord): string[] => [...chunkEntries(record.chunkTable)].map((entry) => hex(entry.id));

async function assertNarBytes(t: TempNarwhal, versions: Version[]): Promise<void> {
  for (const { nar, record } of versions) {
    const bytes = [];
    for await (const piece of readNarBytes(t.nw, record)) bytes.push(piece);
    assertSameBytes(Buffer.concat(bytes), nar);
  }
}

/** Every version reads back exact, uncompressed and as stored frames exactly its stored size long; verify is clean. */
async function assertWhole(t: TempNarwhal, versions: Version[]): Promise<void> {
  await assertNarBytes(t, versions);
  for (const { nar, record } of versions) {
    const now = (await t.nw.meta.getNar(record.narHash))!;
    const frames = [];
    for await (const frame of readStoredFrames(t.nw, now)) frames.push(frame);
    const stored = Buffer.concat(frames);
    assert.equal(stored.length, now.storedSize, 'the stored size is the frames sent');
    assertSameBytes(unzstd(stored), nar);
  }
  const report = await verifyStore(t.nw);
  assert.deepEqual(
    [report.chunks.corrupt, report.chunks.missing, report.chunks.baseDamaged, report.nars.damaged],
    [0, 0, 0, 0],
  );
}

/**
 * Two versions ingested and sketched, and the old version's chunks the new one lacks, each with
 * the new version's chunk at its place; `writeDelta` does what a run does up to step 2 for one.
 */
async function twoVersions(t: TempNarwhal) {
  const versions = [await ingestVersion(t, 1000), await ingestVersion(t, 2000)];
  await backfillSketches(t.nw);
  const newIds = [...chunkEntries(versions[1].record.chunkTable)].map((entry) => entry.id);
  const newer = new Set(newIds.map(hex));
  const changed = [...chunkEntries(versions[0].record.chunkTable)]
    .map((entry, i) => ({ id: entry.id, base: newIds[i] }))
    .filter(({ id }) => !newer.has(hex(id)));
  const content = async (id: Uint8Array): Promise<Buffer> => zstdDecompressSync(await t.nw.chunks.get(id));
  const writeDelta = async ({ id, base }: { id: Uint8Array; base: Uint8Array }): Promise<void> => {
    await t.nw.chunks.put(id, encodeDelta(await content(id), [{ id: base, content: await content(base) }], 9));
    await t.nw.chunks.flush();
  };
  return { versions, changed, writeDelta };
}

test('older chunks become deltas of newer ones; chains grow with versions, never beyond the limit', async () => {
  const t = await tempNarwhal();
  try {
    const versions = [await ingestVersion(t, 1000), await ingestVersion(t, 2000)];
    const storedBefore = (await t.nw.meta.stats()).storedBytes;
    const first = await encode(t);
    const newer = new Set(ids(versions[1].record));
    const changed = ids(versions[0].record).filter((id) => !newer.has(id));
    assert.ok(changed.length >= 5, `a few chunks differ between the versions (${changed.length})`);
    assert.equal(first.encoded, new Set(changed).size, 'every chunk only the old version has');
    for (const id of changed) {
      const form = parseStored(await t.nw.chunks.get(Buffer.from(id, 'hex')));
      assert.equal(form.kind, 'delta');
      assert.ok(form.kind === 'delta' && form.bases.every((base) => newer.has(hex(base))), 'on a newer chunk');
    }
    for (const id of newer) assert.equal((await t.nw.meta.getChunk(Buffer.from(id, 'hex')))!.encoding, 'zstd');
    assert.ok(first.bytesAfter <= 0.75 * first.bytesBefore);
    assert.equal((await t.nw.meta.stats()).storedBytes, storedBefore - first.bytesBefore + first.bytesAfter);
    assert.ok(first.contentBytes > 0 && first.encodeMs > 0);
    const mbPerSecond = first.contentBytes / 1e6 / (first.encodeMs / 1000);
    console.log(`delta encoding: ${first.contentBytes} bytes of content at ${mbPerSecond.toFixed(1)} MB/s`);
    await assertWhole(t, versions);
    assert.equal((await encodeDeltas(t.nw)).encoded, 0, 'nothing left to do');

    // Each new version pushes the chains one deeper, up to MAX_DELTA_DEPTH and no further.
    let deepest = 0;
    for (const [seed, grows] of [
      [3000, true],
      [4000, true],
      [5000, false], // the previous version's chunks are bases of chains already full: they stay plain
    ] as const) {
      versions.push(await ingestVersion(t, seed));
      assert.equal((await encode(t)).encoded > 0, grows);
      deepest = 0;
      for (const id of new Set(versions.flatMap((v) => ids(v.record)))) {
        const { depth } = await t.nw.meta.deltaChain(Buffer.from(id, 'hex'));
        assert.ok(depth <= MAX_DELTA_DEPTH, `chunk ${id} at depth ${depth}`);
        assert.equal((await t.nw.meta.getChunk(Buffer.from(id, 'hex')))!.deltaDepth, depth, 'as recorded');
        deepest = Math.max(deepest, depth);
      }
    }
    assert.equal(deepest, MAX_DELTA_DEPTH);
    await assertWhole(t, versions);
  } finally {
    await t.close();
  }
});

test('a run cut short after reserving bases, or after writing the delta, is undone or finished by the next', async () => {
  const t = await tempNarwhal();
  try {
    const { versions, changed, writeDelta } = await twoVersions(t);
    const cut = changed.slice(0, 2);
    // Both reserved their base (step 1); the second also has its delta written (step 2), not recorded.
    for (const { id, base } of cut) await t.nw.meta.reserveDeltaBases(id, [base]);
    const [reserved, written] = cut;
    await writeDelta(written);
    assert.equal((await t.nw.meta.pendingDeltas(new Uint8Array(0), 10)).length, 2);
    // Meanwhile every read is whole: `.nar.zst` fits the delta into the plain frame's size recorded.
    await assertWhole(t, versions);

    const report = await encodeDeltas(t.nw);
    assert.equal(report.recovered, 1, 'the written delta is recorded');
    assert.equal(report.undone, 0);
    assert.deepEqual(await t.nw.meta.pendingDeltas(new Uint8Array(0), 10), []);
    const recorded = (await t.nw.meta.getChunk(written.id))!;
    assert.deepEqual([recorded.encoding, recorded.deltaDepth], ['delta', 1]);
    assert.equal((await t.nw.meta.getChunk(reserved.id))!.encoding, 'delta', 'encoded afresh by the run');
    await assertWhole(t, versions);
  } finally {
    await t.close();
  }
});

test('a delta written whose base became unusable meanwhile is written plain again', async () => {
  const t = await tempNarwhal();
  try {
    const { versions, changed, writeDelta } = await twoVersions(t);
    const [{ id, base }] = changed;
    await t.nw.meta.reserveDeltaBases(id, [base]);
    await writeDelta({ id, base });
    await t.nw.meta.setChunksDamaged([base], true, Date.now()); // then found damaged (its file is whole)

    const report = await encodeDeltas(t.nw);
    assert.deepEqual([report.recovered, report.undone], [0, 1]);
    assert.equal(parseStored(await t.nw.chunks.get(id)).kind, 'plain');
    assert.equal((await t.nw.meta.getChunk(id))!.encoding, 'zstd');
    assert.deepEqual(await t.nw.meta.deltaChain(id), { depth: 0, height: 0 }, 'its reservation dropped');
    await t.nw.meta.setChunksDamaged([base], false, Date.now());
    await assertWhole(t, versions);
  } finally {
    await t.close();
  }
});

test('deltas the metadata store refuses to record get their plain frames back', async () => {
  const t = await tempNarwhal();
  try {
    const versions = [await ingestVersion(t, 1000), await ingestVersion(t, 2000)];
    const storedBefore = (await t.nw.meta.stats()).storedBytes;
    const record = t.nw.meta.recordDeltas.bind(t.nw.meta);
    t.nw.meta.recordDeltas = async () => 0; // every chunk changed meanwhile
    const report = await encode(t);
    t.nw.meta.recordDeltas = record;
    assert.equal(report.encoded, 0);
    assert.ok(report.examined > 0);
    assert.deepEqual(await t.nw.meta.pendingDeltas(new Uint8Array(0), 10), []);
    assert.equal((await t.nw.meta.stats()).storedBytes, storedBefore);
    await assertWhole(t, versions);
    assert.ok((await encodeDeltas(t.nw)).encoded > 0, 'a later run does them');
    await assertWhole(t, versions);
  } finally {
    await t.close();
  }
});

test('a re-push that writes a chunk again between the delta write and its record: the record follows the file', async () => {
  const t = await tempNarwhal();
  try {
    const versions = [await ingestVersion(t, 1000), await ingestVersion(t, 2000)];
    const [oldPath] = [
      await addPath(t.nw, 'main', versions[0].record),
      await addPath(t.nw, 'main', versions[1].record),
    ];
    const main = (await t.nw.meta.getCache('main'))!;
    const record = t.nw.meta.recordDeltas.bind(t.nw.meta);
    let repushed = false;
    t.nw.meta.recordDeltas = async (chunks) => {
      if (!repushed) {
        repushed = true;
        // The old path is deleted and GC finds its chunks unused, so its re-push writes them again, plain.
        await t.nw.meta.deletePaths(main.id, [oldPath]);
        await t.nw.meta.markUnreferencedNars(Date.now());
        await t.nw.meta.deleteUnreferencedNars(Date.now(), Date.now(), 10);
        versions[0] = {
          ...versions[0],
          record: await ingestNar(t.nw, bodyOf(versions[0].nar), { compression: 'none' }),
        };
        await addPath(t.nw, 'main', versions[0].record, oldPath);
      }
      return record(chunks);
    };
    const report = await encode(t);
    t.nw.meta.recordDeltas = record;
    assert.ok(repushed && report.examined > 0);
    assert.deepEqual(await t.nw.meta.pendingDeltas(new Uint8Array(0), 10), []);
    for (const chunk of await t.nw.meta.listChunks(new Uint8Array(0), 1000)) {
      const stored = await t.nw.chunks.get(chunk.id);
      assert.equal(parseStored(stored).kind === 'delta' ? 'delta' : 'zstd', chunk.encoding, 'recorded as stored');
      assert.equal(stored.length, chunk.storedSize, 'the record has the size of its file');
    }
    await assertWhole(t, versions);
    assert.ok((await encodeDeltas(t.nw)).encoded > 0, 'a later run encodes them');
  } finally {
    await t.close();
  }
});

test('a delta worker that fails ends the run with its error, nothing reserved or written; the next run encodes', async () => {
  const t = await tempNarwhal();
  try {
    const versions = [await ingestVersion(t, 1000), await ingestVersion(t, 2000)];
    await backfillSketches(t.nw);
    const storedBefore = (await t.nw.meta.stats()).storedBytes;
    // A level the worker's zstd refuses: every delta computed fails there.
    await assert.rejects(
      encodeDeltas(t.nw, { level: 'nine' as unknown as number }),
      (err: unknown) => (err as { code?: unknown }).code === 'ERR_INVALID_ARG_TYPE',
    );
    assert.deepEqual(
      await t.nw.meta.pendingDeltas(new Uint8Array(0), 100),
      [],
      'bases are reserved only for deltas made',
    );
    assert.equal((await t.nw.meta.stats()).storedBytes, storedBefore, 'nothing written');
    await assertWhole(t, versions);

    const report = await encodeDeltas(t.nw);
    assert.deepEqual([report.recovered, report.undone], [0, 0], 'nothing left to finish or undo');
    assert.ok(report.encoded > 0);
    assert.deepEqual(await t.nw.meta.pendingDeltas(new Uint8Array(0), 100), []);
    await assertWhole(t, versions);
  } finally {
    await t.close();
  }
});

test('the report: content compressed covers every reserved chunk; a delta not worth keeping is marked, never reserved', async () => {
  for (const margin of [0.001, undefined]) {
    const t = await tempNarwhal();
    try {
      const versions = [await ingestVersion(t, 1000), await ingestVersion(t, 2000)];
      await backfillSketches(t.nw);
      const storedBefore = (await t.nw.meta.stats()).storedBytes;
      const chosen: Uint8Array[] = [];
      const reserve = t.nw.meta.reserveDeltaBasesOf.bind(t.nw.meta);
      t.nw.meta.reserveDeltaBasesOf = async (chunks) => {
        chosen.push(...chunks.map((chunk) => chunk.id));
        return reserve(chunks);
      };
      let reservedContent = 0;
      const report = await encodeDeltas(t.nw, { margin, workers: 1 });
      for (const id of chosen) reservedContent += (await t.nw.meta.getChunk(id))!.size;
      if (margin !== undefined) {
        // No delta is that small: each chunk looked at is compressed, none reserved, all marked.
        assert.deepEqual([report.encoded, chosen.length], [0, 0]);
        assert.ok(report.examined > 0 && report.contentBytes > 0);
        assert.equal(report.marked, report.examined);
        assert.deepEqual(await t.nw.meta.pendingDeltas(new Uint8Array(0), 100), []);
        assert.equal((await t.nw.meta.stats()).storedBytes, storedBefore);
        assert.equal((await encodeDeltas(t.nw)).examined, 0, 'marked chunks are passed by');
      } else {
        assert.ok(report.encoded > 0 && report.encoded <= report.examined);
        assert.ok(report.contentBytes >= reservedContent, 'every reserved chunk was compressed');
        assert.ok(report.encodeMs > 0 && report.cpuMs > 0 && report.wallMs > 0);
        assert.equal((await t.nw.meta.stats()).storedBytes, storedBefore - report.bytesBefore + report.bytesAfter);
      }
      await assertWhole(t, versions);
    } finally {
      await t.close();
    }
  }
});

test('one delta worker or several store the same deltas', async () => {
  const outcomes = [];
  for (const workers of [1, 3]) {
    const t = await tempNarwhal();
    try {
      for (const seed of [1000, 2000, 3000]) await ingestVersion(t, seed);
      const report = await encode(t, { workers });
      const deltas = [];
      for (let after: Uint8Array = new Uint8Array(0); ; ) {
        const page = await t.nw.meta.listChunks(after, 100);
        if (page.length === 0) break;
        after = page[page.length - 1].id;
        for (const chunk of page) {
          const form = parseStored(await t.nw.chunks.get(chunk.id));
          if (form.kind === 'delta')
            deltas.push(`${hex(chunk.id)} on ${form.bases.map(hex).join()} at ${chunk.deltaDepth}`);
        }
      }
      outcomes.push({ encoded: report.encoded, bytesAfter: report.bytesAfter, deltas });
    } finally {
      await t.close();
    }
  }
  assert.ok(outcomes[0].encoded > 0);
  assert.deepEqual(outcomes[1], outcomes[0]);
});

test('choices of one batch that lengthen a chain together beyond the limit are deferred, never recorded', async () => {
  const t = await tempNarwhal();
  try {
    const versions = [];
    for (const seed of [1000, 2000, 3000, 4000, 5000]) versions.push(await ingestVersion(t, seed));
    await backfillSketches(t.nw);
    // Three places whose chunk changes in every version: each chunk there resembles only the one at
    // its place in the next version, and the candidates are those of these chains alone, so that
    // one batch chooses every link of chains of five without seeing the others.
    const tables = versions.map((v) => [...chunkEntries(v.record.chunkTable)].map((entry) => entry.id));
    const places = tables[0]
      .map((_, i) => i)
      .filter((i) => new Set(tables.map((table) => (table[i] ? hex(table[i]) : ''))).size === tables.length)
      .slice(0, 3);
    assert.equal(places.length, 3);
    const next = new Map<string, Uint8Array>();
    for (const i of places) for (let v = 0; v + 1 < tables.length; v++) next.set(hex(tables[v][i]), tables[v + 1][i]);
    // Their sketches are alike: each candidate gets one naming it instead.
    const linked = [...next.keys()];
    t.nw.meta.similarChunks = async (sketch) => [{ id: next.get(linked[sketch[0]])!, matches: 4 }];
    const candidates = t.nw.meta.deltaCandidates.bind(t.nw.meta);
    t.nw.meta.deltaCandidates = async (after, limit) =>
      (await candidates(after, 10_000))
        .filter((c) => next.has(hex(c.id)))
        .slice(0, limit)
        .map((c) => ({ ...c, sketch: Uint32Array.of(linked.indexOf(hex(c.id)), 0, 0, 0) }));

    // Four links of five chunks make a chain one too long: of each chain, one link is deferred.
    const first = await encodeDeltas(t.nw);
    assert.deepEqual([first.examined, first.encoded, first.deferred], [12, 9, 3]);
    const second = await encodeDeltas(t.nw);
    assert.deepEqual([second.encoded, second.deferred], [0, 0], 'seeing the chains, the next run chooses none');
    for (const id of new Set(versions.flatMap((v) => ids(v.record)))) {
      const { depth } = await t.nw.meta.deltaChain(Buffer.from(id, 'hex'));
      assert.ok(depth <= MAX_DELTA_DEPTH, `chunk ${id} at depth ${depth}`);
      assert.equal((await t.nw.meta.getChunk(Buffer.from(id, 'hex')))!.deltaDepth, depth, 'as recorded');
    }
    assert.deepEqual(await t.nw.meta.pendingDeltas(new Uint8Array(0), 100), []);
    await assertWhole(t, versions);
  } finally {
    await t.close();
  }
});

/**
 * Versions of one binary with a byte changed every 12 bytes between them: every 32-byte window
 * differs, so no sketch matches, while zstd still finds the 11-byte runs between the changes.
 */
async function scrambledVersions(t: TempNarwhal, names: (string | undefined)[], offsets = [0, 12]): Promise<Version[]> {
  const cache = (await t.nw.meta.getCache('main'))!;
  const versions: Version[] = [];
  for (const [i, name] of names.entries()) {
    const version = await ingestVersion(t, offsets[i], SCRAMBLE_STRIDE);
    if (name !== undefined) {
      const hashPart = randomHashPart();
      const storePath = `/nix/store/${hashPart}-${name}`;
      const path = { cacheId: cache.id, hashPart, storePath, narId: version.record.id, references: [], deriver: null };
      await t.nw.meta.putPath({ ...path, system: null, sigs: [], ca: null });
    }
    versions.push(version);
    await delay(5); // each NAR of its own millisecond: "newer" is well defined
  }
  return versions;
}

test("chunks no sketch matches take the chunks at their place in their package's next NAR as bases", async () => {
  for (const [names, byPlace] of [
    [['tool-1.0', 'tool-1.1'], true],
    [[undefined, undefined], false], // no path: no package
    [['tool-1.0', 'other-1.1'], false], // not the same package
  ] as const) {
    const t = await tempNarwhal();
    try {
      const versions = await scrambledVersions(t, [...names]);
      const report = await encode(t);
      const newer = ids(versions[1].record);
      const changed = ids(versions[0].record).filter((id) => !newer.includes(id));
      if (!byPlace) {
        assert.deepEqual([report.encoded, report.marked], [0, report.examined], `${names}: no delta, all marked`);
        continue;
      }
      assert.equal(report.byPlace, report.encoded);
      assert.ok(report.encoded >= changed.length / 2, `most changed chunks (${report.encoded} of ${changed.length})`);
      let multi = 0;
      for (const id of changed) {
        const form = parseStored(await t.nw.chunks.get(Buffer.from(id, 'hex')));
        if (form.kind !== 'delta') continue;
        const at = form.bases.map((base) => newer.indexOf(hex(base)));
        assert.ok(at.every((i) => i >= 0) && form.bases.length <= PLACE_CHUNKS, 'chunks of the newer NAR');
        assert.deepEqual(
          at,
          [...at].sort((a, b) => a - b),
          'in their order there',
        );
        assert.ok(at[at.length - 1] - at[0] < PLACE_CHUNKS, 'side by side');
        // Both versions are as long: the newer chunk holding the chunk's first byte is among them.
        const start = [...chunkEntries(versions[0].record.chunkTable)].find((entry) => hex(entry.id) === id)!.start;
        const holder = [...chunkEntries(versions[1].record.chunkTable)].findIndex(
          (entry) => entry.start <= start && start < entry.end,
        );
        assert.ok(at.includes(holder), `the chunk at its place (${holder}) among ${at}`);
        if (form.bases.length > 1) multi++;
      }
      assert.ok(multi > 0, 'multi-base dictionaries');
      await assertWhole(t, versions);
    } finally {
      await t.close();
    }
  }
});

test('a chunk found not worth a delta is passed by until a newer NAR of its package arrives', async () => {
  const t = await tempNarwhal();
  try {
    // Versions 1.0 and 2.0 share nothing a delta could use; 1.0's chunks are marked.
    const cache = (await t.nw.meta.getCache('main'))!;
    const put = async (version: Version, name: string): Promise<void> => {
      const hashPart = randomHashPart();
      const storePath = `/nix/store/${hashPart}-${name}`;
      const path = { cacheId: cache.id, hashPart, storePath, narId: version.record.id, references: [], deriver: null };
      await t.nw.meta.putPath({ ...path, system: null, sigs: [], ca: null });
      await delay(5);
    };
    const first = await ingestVersion(t, 0, SCRAMBLE_STRIDE);
    await put(first, 'tool-1.0');
    await backfillSketches(t.nw);
    const alone = await encodeDeltas(t.nw);
    assert.ok(alone.examined > 0);
    assert.deepEqual([alone.encoded, alone.marked], [0, alone.examined], 'no newer chunk: all marked');
    assert.equal((await encodeDeltas(t.nw)).examined, 0, 'passed by while nothing changes');

    const second = await ingestVersion(t, 12, SCRAMBLE_STRIDE);
    await put(second, 'tool-1.1');
    await backfillSketches(t.nw);
    const after = await encodeDeltas(t.nw);
    const oldOnly = ids(first.record).filter((id) => !ids(second.record).includes(id));
    assert.ok(after.examined >= oldOnly.length, "the older NAR's chunks are looked at again");
    assert.ok(after.encoded > 0 && after.byPlace === after.encoded);
    assert.equal((await encodeDeltas(t.nw)).examined, 0);
    await assertWhole(t, [first, second]);
  } finally {
    await t.close();
  }
});

/**
 * Three versions; the oldest's changed chunks are left out of a first run (marked tried), in which
 * the middle version's become deltas of the newest, then let in for a second: their bases are
 * deltas themselves, read and decoded with their chains for the whole batch (delta-batch-inputs.ts).
 */
async function oldestAfterMiddle(t: TempNarwhal, seed: number) {
  const versions = [
    await ingestVersion(t, seed),
    await ingestVersion(t, seed + 1000),
    await ingestVersion(t, seed + 2000),
  ];
  const later = new Set([...ids(versions[1].record), ...ids(versions[2].record)]);
  const oldest = [...new Set(ids(versions[0].record).filter((id) => !later.has(id)))].map((id) =>
    Buffer.from(id, 'hex'),
  );
  await backfillSketches(t.nw);
  await t.nw.meta.markDeltaTried(oldest, Date.now());
  const first = await encodeDeltas(t.nw);
  assert.ok(first.encoded > 0, 'the middle version has deltas of the newest');
  const db = new DatabaseSync(join(t.dir, 'narwhal.sqlite'));
  try {
    db.prepare('UPDATE chunks SET delta_tried_at = NULL').run();
  } finally {
    db.close();
  }
  return { versions, oldest };
}

/** The bases below a stored chunk, at every depth. */
async function basesBelow(t: TempNarwhal, id: Uint8Array): Promise<string[]> {
  const form = parseStored(await t.nw.chunks.get(id));
  if (form.kind !== 'delta') return [];
  const below = await Promise.all(form.bases.map((base) => basesBelow(t, base)));
  return [...form.bases.map(hex), ...below.flat()];
}

test('bases stored as deltas themselves are decoded with their chains; every version reads back whole', async () => {
  const t = await tempNarwhal();
  try {
    const { versions, oldest } = await oldestAfterMiddle(t, 1000);
    const second = await encodeDeltas(t.nw);
    assert.equal(second.finished, true);
    const depths = await Promise.all(oldest.map(async (id) => (await t.nw.meta.getChunk(id))!.deltaDepth));
    assert.ok(
      depths.some((depth) => depth >= 2),
      `some of the oldest version's chunks are deltas of deltas (depths ${depths.join(' ')})`,
    );
    await assertWhole(t, versions);
  } finally {
    await t.close();
  }
});

test('a base whose chain is damaged on disk: the pass goes on, and no delta is built on it', async () => {
  const t = await tempNarwhal();
  try {
    // Other versions than the test before: the check workers keep the bases they decoded from
    // trusted chains, and one they keep is not read again (as when serving, chunk-content.ts).
    const { oldest } = await oldestAfterMiddle(t, 11_000);
    // The newest version's chunks below the middle version's deltas are damaged behind the store's back.
    const damaged = new Set<string>();
    const rows = new DatabaseSync(join(t.dir, 'narwhal.sqlite'))
      .prepare('SELECT DISTINCT base_id FROM chunk_bases')
      .all() as { base_id: Uint8Array }[];
    for (const { base_id } of rows) {
      await damageChunk(t.nw.chunks, base_id, 'flip');
      damaged.add(hex(base_id));
    }
    assert.ok(damaged.size > 0);
    const second = await encodeDeltas(t.nw);
    assert.equal(second.finished, true, 'the run went through every chunk');
    assert.ok(second.examined >= oldest.length, 'the oldest version was looked at');
    for (const id of oldest) {
      const below = await basesBelow(t, id);
      assert.ok(!below.some((base) => damaged.has(base)), `chunk ${hex(id)} is not built on a damaged chunk`);
    }
  } finally {
    await t.close();
  }
});
