/**
 * POST /<cache>/chunk-frames (src/serving/chunk-frames.ts): chunks by id, each answer decoding to
 * its chunk; deltas against the chunks the client says it holds where they are smaller, stored
 * deltas passed on as they are, nothing of caches the caller cannot read, bounded requests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { zstdDecompressSync } from 'node:zlib';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { decodeDelta, parseStored } from '../../../src/delta/stored-form.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { encodeDeltas } from '../../../src/maintenance/delta-encode.ts';
import { backfillSketches } from '../../../src/maintenance/sketch-backfill.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import { ExactReader } from '../../../src/runtime/exact-reader.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import {
  type ChunkFrameKind,
  encodeWantedChunks,
  MAX_CHUNKS_WANTED,
  readChunkFrame,
  type WantedChunk,
} from '../../../src/serving/chunk-frames-body.ts';
import { createCache } from '../../../src/tenancy/caches.ts';
import { addPath, bodyOf, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');
const ids = (record: NarRecord): Uint8Array[] => [...chunkEntries(record.chunkTable)].map((e) => e.id);

describe('chunk frames', () => {
  let t: TempNarwhal;
  let server: Server;
  let base: string;
  let v1: NarRecord;
  let v2: NarRecord;
  /** Chunk contents by id, as a client that holds them would. */
  const contents = new Map<string, Uint8Array>();

  const ask = async (cache: string, wanted: WantedChunk[]) => {
    const res = await fetch(`${base}/${cache}/chunk-frames`, { method: 'POST', body: encodeWantedChunks(wanted) });
    if (res.status !== 200) return { status: res.status, answers: [] };
    const reader = new ExactReader(Readable.from(Buffer.from(await res.arrayBuffer())));
    const answers: { id: string; kind: ChunkFrameKind; payload: Uint8Array }[] = [];
    for (let a = await readChunkFrame(reader, 1 << 20); a; a = await readChunkFrame(reader, 1 << 20)) {
      answers.push({ id: hex(a.id), kind: a.kind, payload: a.payload });
    }
    return { status: res.status, answers };
  };
  /** The chunk an answer gives, from its payload and the contents the client holds. */
  const decode = (kind: ChunkFrameKind, payload: Uint8Array): Uint8Array => {
    if (kind === 'frame') return zstdDecompressSync(payload);
    const form = parseStored(payload);
    assert.equal(form.kind, 'delta');
    if (form.kind !== 'delta') throw new Error('unreachable');
    return decodeDelta(
      form.frame,
      form.bases.map((b) => contents.get(hex(b))!),
      1 << 20,
    );
  };

  before(async () => {
    t = await tempNarwhal();
    await createCache(t.nw, 'private', { isPublic: false });
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const n1 = versionNar(1000, 200_000);
    const n2 = versionNar(2000, 200_000);
    v1 = await ingestNar(t.nw, bodyOf(n1), { compression: 'none' });
    v2 = await ingestNar(t.nw, bodyOf(n2), { compression: 'none' });
    await addPath(t.nw, 'main', v1);
    await addPath(t.nw, 'main', v2);
    for (const [nar, record] of [
      [n1, v1],
      [n2, v2],
    ] as const) {
      let at = 0;
      for (const entry of chunkEntries(record.chunkTable)) {
        contents.set(hex(entry.id), nar.subarray(at, at + entry.end - entry.start));
        at += entry.end - entry.start;
      }
    }
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('each answer decodes to its chunk; hints at the same place make deltas; unknown ids are absent', async () => {
    const old = ids(v1);
    const known = new Set(old.map(hex));
    const wanted = ids(v2)
      .map((id, i) => ({ id, hints: old.slice(Math.max(0, i - 1), i + 2) }))
      .filter((w) => !known.has(hex(w.id)));
    const unknown = new Uint8Array(randomBytes(32));
    const { status, answers } = await ask('main', [...wanted, { id: unknown, hints: [] }]);
    assert.equal(status, 200);
    assert.equal(answers.length, wanted.length + 1);
    for (const [i, w] of wanted.entries()) {
      assert.equal(answers[i].id, hex(w.id));
      const chunk = decode(answers[i].kind, answers[i].payload);
      assert.equal(createHash('sha256').update(chunk).digest('hex'), hex(w.id), `answer ${i} is its chunk`);
    }
    const deltas = answers.filter((a) => a.kind === 'delta');
    assert.ok(deltas.length > 0, 'chunks like their hints come as deltas');
    const plainBytes = wanted.reduce((sum, w) => sum + contents.get(hex(w.id))!.length, 0);
    const sent = answers.reduce((sum, a) => sum + a.payload.length, 0);
    assert.ok(sent < plainBytes / 10, `deltas send a small part of the chunks (${sent} of ${plainBytes} B)`);
    assert.equal(answers.at(-1)!.kind, 'absent');
  });

  test('the same request answers the same again; a delta names only bases its request gave', async () => {
    const old = ids(v1);
    const known = new Set(old.map(hex));
    const wanted = ids(v2)
      .map((id, i) => ({ id, hints: old.slice(Math.max(0, i - 1), i + 2) }))
      .filter((w) => !known.has(hex(w.id)));
    const first = await ask('main', wanted);
    const again = await ask('main', wanted);
    assert.deepEqual(again.answers, first.answers);
    const fewer = wanted.map((w) => ({ id: w.id, hints: w.hints.slice(-1) }));
    const { answers } = await ask('main', fewer);
    for (const [i, a] of answers.entries()) {
      assert.equal(createHash('sha256').update(decode(a.kind, a.payload)).digest('hex'), hex(fewer[i].id));
      if (a.kind !== 'delta') continue;
      const form = parseStored(a.payload);
      assert.ok(form.kind === 'delta' && form.bases.every((b) => fewer[i].hints.some((h) => hex(h) === hex(b))));
    }
  });

  test('a chunk stored as a delta of chunks the client holds goes as stored', async () => {
    await backfillSketches(t.nw);
    assert.ok((await encodeDeltas(t.nw)).encoded > 0);
    const stored = [];
    for (const id of ids(v1)) {
      const form = parseStored(await t.nw.chunks.get(id));
      if (form.kind === 'delta') stored.push({ id, hints: form.bases });
    }
    assert.ok(stored.length > 0);
    const { answers } = await ask('main', stored.slice(0, 5));
    for (const [i, a] of answers.entries()) {
      assert.equal(a.kind, 'delta');
      assert.deepEqual(Buffer.from(a.payload), Buffer.from(await t.nw.chunks.get(stored[i].id)), 'the stored bytes');
      assert.equal(createHash('sha256').update(decode(a.kind, a.payload)).digest('hex'), hex(stored[i].id));
    }
  });

  test('nothing from a cache the caller cannot read, nor from NARs only other caches use', async () => {
    const wanted = ids(v2)
      .slice(0, 3)
      .map((id) => ({ id, hints: [] }));
    assert.equal((await ask('private', wanted)).status, 404);
    await createCache(t.nw, 'other', { isPublic: true });
    const { answers } = await ask('other', wanted);
    assert.deepEqual(
      answers.map((a) => a.kind),
      ['absent', 'absent', 'absent'],
      'chunks of NARs no path of this cache uses',
    );
  });

  test('requests are bounded and well-formed', async () => {
    const many = Array.from({ length: MAX_CHUNKS_WANTED + 1 }, () => ({ id: new Uint8Array(32), hints: [] }));
    const res = await fetch(`${base}/main/chunk-frames`, { method: 'POST', body: encodeWantedChunks(many) });
    assert.equal(res.status, 413);
    const bad = await fetch(`${base}/main/chunk-frames`, { method: 'POST', body: 'NOPE' });
    assert.equal(bad.status, 400);
    const get = await fetch(`${base}/main/chunk-frames`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
  });
});
