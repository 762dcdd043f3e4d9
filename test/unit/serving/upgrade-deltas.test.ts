/**
 * Deltas ready before the first machine asks (src/serving/upgrade-deltas.ts): once a narinfo is
 * uploaded, the server computes the deltas a machine holding the package's previous version asks
 * for with the substituter's hints (place-hints.ts), so that such a request computes none; each
 * such answer still decodes to its chunk; a kept delta whose base GC took is never sent.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { zstdDecompressSync } from 'node:zlib';
import { chunkEntries } from '../../../src/chunking/chunk-table.ts';
import { decodeDelta, parseStored } from '../../../src/delta/stored-form.ts';
import { runGc } from '../../../src/maintenance/gc.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import { serializeNarinfo } from '../../../src/nix/narinfo.ts';
import { ExactReader } from '../../../src/runtime/exact-reader.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import {
  type ChunkFrameKind,
  encodeWantedChunks,
  readChunkFrame,
  type WantedChunk,
} from '../../../src/serving/chunk-frames-body.ts';
import { upgradeDeltasSettled } from '../../../src/serving/upgrade-deltas.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { narHashOf, randomHashPart, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { upgradeRequest } from '../../helpers/upgrade-request.ts';

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');
/** `f`, callable many times, running once. */
const once1 = (f: () => void): (() => void) => {
  let done = false;
  return () => {
    if (!done) f();
    done = true;
  };
};
const BATCH = 64;

describe('deltas prepared for upgrades', () => {
  let t: TempNarwhal;
  let server: Server;
  let base: string;
  let push: Record<string, string>;
  /** Chunk contents by id (hex), as a machine holding them would have them. */
  const contents = new Map<string, Uint8Array>();

  /** Ingests the NAR and uploads a narinfo naming it as `name` over HTTP, as `nix copy --to` does. */
  const upload = async (nar: Uint8Array, name: string): Promise<{ record: NarRecord; hashPart: string }> => {
    const narHash = narHashOf(nar);
    const put = await fetch(`${base}/main/nar/${narHash.slice('sha256:'.length)}.nar`, {
      method: 'PUT',
      body: nar,
      headers: push,
    });
    assert.equal(put.status, 204, await put.text());
    const record = (await t.nw.meta.getNar(narHash))!;
    let at = 0;
    for (const entry of chunkEntries(record.chunkTable)) {
      contents.set(hex(entry.id), nar.subarray(at, at + entry.end - entry.start));
      at += entry.end - entry.start;
    }
    const hashPart = randomHashPart();
    const text = serializeNarinfo({
      storePath: `/nix/store/${hashPart}-${name}`,
      url: 'nar/x.nar',
      narHash: record.narHash,
      narSize: record.narSize,
      references: [],
      sigs: [],
    });
    const res = await fetch(`${base}/main/${hashPart}.narinfo`, { method: 'PUT', body: text, headers: push });
    assert.equal(res.status, 204, await res.text());
    return { record, hashPart };
  };

  /** Asks in batches as the substituter does; every answer must decode to its chunk. */
  const ask = async (wanted: WantedChunk[]): Promise<{ kind: ChunkFrameKind; bases: Uint8Array[] }[]> => {
    const kinds: { kind: ChunkFrameKind; bases: Uint8Array[] }[] = [];
    for (let at = 0; at < wanted.length; at += BATCH) {
      const batch = wanted.slice(at, at + BATCH);
      const res = await fetch(`${base}/main/chunk-frames`, { method: 'POST', body: encodeWantedChunks(batch) });
      assert.equal(res.status, 200);
      const reader = new ExactReader(Readable.from(Buffer.from(await res.arrayBuffer())));
      for (const w of batch) {
        const answer = (await readChunkFrame(reader, 1 << 20))!;
        assert.equal(hex(answer.id), hex(w.id));
        let chunk: Uint8Array;
        let bases: Uint8Array[] = [];
        if (answer.kind === 'frame') chunk = zstdDecompressSync(answer.payload);
        else {
          assert.equal(answer.kind, 'delta');
          const form = parseStored(answer.payload);
          assert.ok(form.kind === 'delta');
          assert.ok(
            form.bases.every((b) => w.hints.some((h) => hex(h) === hex(b))),
            'bases are hints given',
          );
          bases = form.bases;
          chunk = decodeDelta(
            form.frame,
            form.bases.map((b) => contents.get(hex(b))!),
            1 << 20,
          );
        }
        assert.equal(createHash('sha256').update(chunk).digest('hex'), hex(w.id), 'the answer is its chunk');
        kinds.push({ kind: answer.kind, bases });
      }
    }
    return kinds;
  };

  const answers = async (): Promise<Record<string, number>> => {
    const metric = await t.nw.metrics.registry.getSingleMetric('narwhal_chunk_answers_total')!.get();
    return Object.fromEntries(metric.values.map((v) => [String(v.labels.kind), v.value]));
  };
  const counted = async <T>(run: () => Promise<T>): Promise<{ result: T; count: Record<string, number> }> => {
    const before = await answers();
    const result = await run();
    const after = await answers();
    const count = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
    return { result, count };
  };

  before(async () => {
    t = await tempNarwhal();
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    push = { Authorization: `Bearer ${(await createToken(t.nw, { caches: ['main'], perms: ['push'] })).secret}` };
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('after the upload of the next version, its upgrade request computes no delta', async () => {
    const v1 = await upload(versionNar(1000, 200_000), 'tool-1.0');
    const v2 = await upload(versionNar(2000, 200_000), 'tool-1.1');
    await upgradeDeltasSettled();
    const wanted = upgradeRequest(v1.record, v2.record);
    assert.ok(wanted.length > 0);
    const { result, count } = await counted(() => ask(wanted));
    assert.equal(count['computed-delta'] ?? 0, 0, 'no delta computed on the request');
    assert.ok(count['kept-delta'] > 0, 'the deltas were ready');
    assert.equal(count['kept-delta'], result.filter((a) => a.kind === 'delta').length);
  });

  test('an older version uploaded after the newest still has its upgrade to it ready', async () => {
    const newer = await upload(versionNar(5000, 150_000), 'other-2.10');
    const older = await upload(versionNar(7000, 150_000), 'other-2.9');
    await upgradeDeltasSettled();
    const { count } = await counted(() => ask(upgradeRequest(older.record, newer.record)));
    assert.equal(count['computed-delta'] ?? 0, 0);
    assert.ok(count['kept-delta'] > 0);
  });

  test('preparing waits while an upload runs, then prepares', async () => {
    const v1 = await upload(versionNar(6000, 220_000), 'busy-1.0');
    const release = once1(await t.nw.holds.begin()); // an upload under way in this process
    let settled = false;
    try {
      const before = (await answers())['computed-delta'] ?? 0;
      const v2 = await upload(versionNar(8000, 220_000), 'busy-1.1');
      const preparing = upgradeDeltasSettled().then(() => {
        settled = true;
      });
      // Unheld, the first of its deltas is computed within a few hundred milliseconds.
      for (let waited = 0; waited < 2000; waited += 100) {
        await delay(100);
        assert.equal((await answers())['computed-delta'] ?? 0, before, 'no delta computed while the upload runs');
      }
      assert.equal(settled, false);
      release();
      await preparing;
      const { count } = await counted(() => ask(upgradeRequest(v1.record, v2.record)));
      assert.equal(count['computed-delta'] ?? 0, 0);
      assert.ok(count['kept-delta'] > 0, 'prepared once the upload ended');
    } finally {
      release();
    }
  });

  test('a kept delta whose base GC collected is not sent; what comes is the chunk', async () => {
    const v1 = await upload(versionNar(3000, 250_000), 'gone-1.0');
    const v2 = await upload(versionNar(4000, 250_000), 'gone-1.1');
    await upgradeDeltasSettled();
    const wanted = upgradeRequest(v1.record, v2.record);
    const cache = (await t.nw.meta.getCache('main'))!;
    await t.nw.meta.deletePaths(cache.id, [v1.hashPart]);
    await runGc(t.nw, { graceMs: 0 });
    await runGc(t.nw, { graceMs: 0 });
    assert.equal(await t.nw.meta.getNar(v1.record.narHash), undefined, 'the old version is gone');
    const { result, count } = await counted(() => ask(wanted));
    assert.equal(count['kept-delta'] ?? 0, 0, 'no kept delta: each named a base that is gone');
    for (const { bases } of result) {
      for (const b of bases) assert.ok(await t.nw.meta.getChunk(b), 'a delta names only chunks the server still has');
    }
  });
});
