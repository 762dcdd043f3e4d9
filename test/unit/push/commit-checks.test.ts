/**
 * A NAR committed as a chunk list is recorded by the pusher's chunks, not chunked again
 * (src/push/commit-chunk-list.ts): the concatenation is checked as strictly as a whole upload,
 * and a refusal leaves nothing (no NAR record, no chunk record); a commit stores each plain frame
 * as it was sent and serves the NAR exact as `.nar`, `.nar.zst` and a casync index, which
 * `narwhal verify` finds whole.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, zstdCompressSync } from 'node:zlib';
import { DEFAULT_CHUNKER_PARAMS } from '../../../src/chunking/chunker.ts';
import { deltaDictionary } from '../../../src/delta/stored-form.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { verifyStore } from '../../../src/maintenance/verify.ts';
import { encodeChunkListEntry, encodeChunkListHeader } from '../../../src/push/chunk-list-body.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { decodeCaibx } from '../../../src/storage/caibx.ts';
import { createCache } from '../../../src/tenancy/caches.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { addPath, bodyOf, narHashOf, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { unzstd } from '../../helpers/zstd-cli.ts';
import { type Chunk, chunksOf, hex } from '../../helpers/nar-chunks.ts';

const frameOf = (c: Chunk): Uint8Array => zstdCompressSync(c.data);

/** A chunk-list body: chunks in `held` named, the rest sent as `frame` gives them (or plain frames). */
function body(chunks: Chunk[], held = new Set<string>(), frame = frameOf): Buffer {
  const parts: Uint8Array[] = [encodeChunkListHeader()];
  for (const c of chunks) parts.push(encodeChunkListEntry(c.id, held.has(hex(c.id)) ? undefined : frame(c)));
  return Buffer.concat(parts);
}

/** `bytes` cut at `ends` into chunks with their ids, as a client may cut them whatever the chunker says. */
function cutAt(bytes: Uint8Array, ends: number[]): Chunk[] {
  let start = 0;
  return ends.map((end) => {
    const data = bytes.subarray(start, end);
    start = end;
    return { id: new Uint8Array(createHash('sha256').update(data).digest()), data };
  });
}

describe('committing a chunk list', () => {
  let t: TempNarwhal;
  let server: Server;
  let base: string;
  let push: Record<string, string>;
  let pull: Record<string, string>;
  const old = versionNar(7000, 200_000);
  let oldChunks: Chunk[];

  const commit = (nar: Uint8Array, payload: Buffer, narSize = nar.length) =>
    fetch(`${base}/_api/v1/caches/pushed/nars?narHash=${narHashOf(nar)}&narSize=${narSize}`, {
      method: 'POST',
      headers: push,
      body: payload,
    });
  const get = async (path: string): Promise<Buffer> => {
    const res = await fetch(`${base}/pushed/${path}`, { headers: pull });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  };

  before(async () => {
    t = await tempNarwhal();
    await createCache(t.nw, 'pushed', { isPublic: false });
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const secret = async (perms: ('pull' | 'push')[]) =>
      ({ Authorization: `Bearer ${(await createToken(t.nw, { caches: ['pushed'], perms })).secret}` }) as Record<
        string,
        string
      >;
    push = await secret(['pull', 'push']);
    pull = await secret(['pull']);
    oldChunks = await chunksOf(old);
    await addPath(t.nw, 'pushed', await ingestNar(t.nw, bodyOf(old), { compression: 'none' }));
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('a list that is not its NAR is refused with 4xx, and neither the NAR nor a sent chunk is recorded', async () => {
    const nar = versionNar(7100, 200_000);
    const chunks = await chunksOf(nar);
    // Bytes that are not a NAR: its magic spoiled, chunked with right ids and hashed as they are.
    const broken = Uint8Array.from(nar);
    broken[20] ^= 0xff;
    const brokenChunks = await chunksOf(broken);
    const other = chunks.map((c, i) => (i === 2 ? { id: c.id, data: chunks[1].data } : c));
    // The first chunk one byte longer than the chunker's largest, with its own id.
    const max = DEFAULT_CHUNKER_PARAMS.max;
    const oversized = cutAt(nar, [max + 1, nar.length]);
    const cases: [string, Uint8Array, Buffer, number][] = [
      ['broken grammar', broken, body(brokenChunks), 400],
      ['a NarHash of other bytes', versionNar(7150, 200_000), body(chunks), 400],
      ['a sent chunk that is not its id', nar, body(other), 400],
      ['a chunk over the largest', nar, body(oversized), 400],
    ];
    for (const [what, claimed, payload, status] of cases) {
      const res = await commit(claimed, payload, nar.length);
      const text = await res.text();
      assert.equal(res.status, status, `${what}: ${text}`);
      assert.equal(await t.nw.meta.getNar(narHashOf(claimed)), undefined, `${what}: no NAR recorded`);
    }
    const sent = [...chunks, ...brokenChunks, ...oversized];
    for (const c of sent) {
      if (oldChunks.some((o) => hex(o.id) === hex(c.id))) continue;
      assert.equal(await t.nw.meta.getChunk(c.id), undefined, `no record of sent chunk ${hex(c.id)}`);
    }
  });

  test('a committed NAR keeps the frames sent, serves exact as .nar, .nar.zst and casync, and verifies whole', async () => {
    const nar = versionNar(7200, 200_000);
    const chunks = await chunksOf(nar);
    const held = new Set(oldChunks.map((c) => hex(c.id)));
    const fresh = chunks.filter((c) => !held.has(hex(c.id)));
    assert.ok(fresh.length >= 2 && fresh.length < chunks.length, 'the NAR shares chunks with the one stored');
    // One new chunk goes as a delta of a stored chunk, the others as plain frames, kept as sent.
    const asDelta = fresh[0];
    const baseChunk = oldChunks[0];
    const sentFrames = new Map<string, Uint8Array>();
    const parts: Uint8Array[] = [encodeChunkListHeader()];
    for (const c of chunks) {
      if (held.has(hex(c.id))) parts.push(encodeChunkListEntry(c.id));
      else if (c === asDelta) {
        const delta = zstdCompressSync(c.data, {
          dictionary: deltaDictionary([baseChunk.data]),
          params: { [constants.ZSTD_c_compressionLevel]: 3 },
        } as Parameters<typeof zstdCompressSync>[1]);
        parts.push(encodeChunkListEntry(c.id, delta, [baseChunk.id]));
      } else {
        const frame = frameOf(c);
        sentFrames.set(hex(c.id), frame);
        parts.push(encodeChunkListEntry(c.id, frame));
      }
    }
    const res = await commit(nar, Buffer.concat(parts));
    assert.equal(res.status, 201, await res.clone().text());
    for (const [id, frame] of sentFrames) {
      assertSameBytes(Buffer.from(await t.nw.chunks.get(Buffer.from(id, 'hex'))), Buffer.from(frame));
    }
    assertSameBytes(unzstd(await t.nw.chunks.get(asDelta.id)), Buffer.from(asDelta.data));

    const record = (await t.nw.meta.getNar(narHashOf(nar)))!;
    assert.equal(record.chunkCount, chunks.length, 'recorded by the chunks sent');
    const hashPart = await addPath(t.nw, 'pushed', record);
    const info = (await get(`${hashPart}.narinfo`)).toString();
    const url = /^URL: (.*)$/m.exec(info)![1];
    assertSameBytes(unzstd(await get(url)), Buffer.from(nar));
    const nix32 = record.narHash.slice('sha256:'.length);
    assertSameBytes(await get(`nar/${nix32}.nar`), Buffer.from(nar));
    const index = decodeCaibx(new Uint8Array(await get(`nar/${nix32}.caibx`)));
    assert.deepEqual(
      index.chunks.map((c) => hex(c.id)),
      chunks.map((c) => hex(c.id)),
    );
    let start = 0;
    for (const chunk of index.chunks) {
      const id = hex(chunk.id);
      const data = unzstd(await get(`castr/${id.slice(0, 4)}/${id}.cacnk`));
      assertSameBytes(data, Buffer.from(nar.subarray(start, chunk.end)));
      start = chunk.end;
    }
    const report = await verifyStore(t.nw);
    assert.deepEqual(report.chunks, { ok: report.chunks.ok, missing: 0, corrupt: 0, baseDamaged: 0 });
    assert.deepEqual(report.nars, { ok: 2, damaged: 0 });
  });
  test('a chunk sent as a frame that does not declare its size is stored as a frame of its own', async () => {
    const nar = versionNar(7300, 200_000);
    const chunks = await chunksOf(nar);
    const odd = chunks.at(-1)!;
    const sent = zstdCompressSync(odd.data, { params: { [constants.ZSTD_c_contentSizeFlag]: 0 } });
    const res = await commit(
      nar,
      body(chunks, new Set(), (c) => (c === odd ? sent : frameOf(c))),
    );
    assert.equal(res.status, 201, await res.clone().text());
    const stored = Buffer.from(await t.nw.chunks.get(odd.id));
    assert.notDeepEqual(new Uint8Array(stored), new Uint8Array(sent), 'not kept as sent');
    assertSameBytes(unzstd(stored), Buffer.from(odd.data));
    const record = (await t.nw.meta.getNar(narHashOf(nar)))!;
    const hashPart = await addPath(t.nw, 'pushed', record);
    assert.match((await get(`${hashPart}.narinfo`)).toString(), /NarHash: /);
    assertSameBytes(await get(`nar/${record.narHash.slice('sha256:'.length)}.nar`), Buffer.from(nar));
  });
});
