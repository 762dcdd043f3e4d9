/**
 * The server side of pushing by chunks (src/push/), through HTTP: which chunks a pusher must send
 * (nothing revealed of caches it cannot read), and NARs committed as chunk lists, checked as
 * strictly as a whole upload, with nothing stored when a check fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { zstdCompressSync } from 'node:zlib';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { encodeChunkListEntry, encodeChunkListHeader } from '../../../src/push/chunk-list-body.ts';
import { MAX_CHUNKS_ASKED } from '../../../src/push/missing-chunks.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { readNarBytes } from '../../../src/serving/nar-reader.ts';
import { createCache } from '../../../src/tenancy/caches.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { addPath, bodyOf, narHashOf, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { type Chunk, chunksOf, hex } from '../../helpers/nar-chunks.ts';

/** A chunk-list body: the chunks in `held` named as stored, every other sent as a zstd frame. */
function chunkListBody(chunks: Chunk[], held: Set<string>, frameOf = (c: Chunk) => zstdCompressSync(c.data)): Buffer {
  const parts: Uint8Array[] = [encodeChunkListHeader()];
  for (const c of chunks) parts.push(encodeChunkListEntry(c.id, held.has(hex(c.id)) ? undefined : frameOf(c)));
  return Buffer.concat(parts);
}

describe('pushing by chunks', () => {
  let t: TempNarwhal;
  let server: Server;
  let api: string;
  let alphaPush: Record<string, string>;
  let betaPush: Record<string, string>;
  let alphaPull: Record<string, string>;
  const v1 = versionNar(1000, 200_000);
  const v2 = versionNar(2000, 200_000);
  let v1Chunks: Chunk[];
  let v2Chunks: Chunk[];

  const bearer = async (caches: string[], perms: ('pull' | 'push')[]) => ({
    Authorization: `Bearer ${(await createToken(t.nw, { caches, perms })).secret}`,
  });
  const missing = async (cache: string, ids: Uint8Array[], headers: Record<string, string>) => {
    const res = await fetch(`${api}/caches/${cache}/missing-chunks`, {
      method: 'POST',
      headers,
      body: Buffer.concat(ids),
    });
    assert.equal(res.status, 200);
    const body = new Uint8Array(await res.arrayBuffer());
    return Array.from({ length: body.length / 32 }, (_, i) => hex(body.subarray(32 * i, 32 * i + 32)));
  };
  const commit = (
    cache: string,
    nar: Uint8Array,
    body: Buffer,
    headers: Record<string, string>,
    narSize = nar.length,
  ) =>
    fetch(`${api}/caches/${cache}/nars?narHash=${narHashOf(nar)}&narSize=${narSize}`, {
      method: 'POST',
      headers,
      body,
    });

  before(async () => {
    t = await tempNarwhal();
    await createCache(t.nw, 'alpha', { isPublic: false });
    await createCache(t.nw, 'beta', { isPublic: false });
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_api/v1`;
    alphaPush = await bearer(['alpha'], ['pull', 'push']);
    betaPush = await bearer(['beta'], ['pull', 'push']);
    alphaPull = await bearer(['alpha'], ['pull']);
    v1Chunks = await chunksOf(v1);
    v2Chunks = await chunksOf(v2);
    await addPath(t.nw, 'alpha', await ingestNar(t.nw, bodyOf(v1), { compression: 'none' }));
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('a pusher learns which chunks to send; another tenant learns nothing', async () => {
    const ids = v2Chunks.map((c) => c.id);
    const v1Ids = new Set(v1Chunks.map((c) => hex(c.id)));
    const lacking = ids.map(hex).filter((id) => !v1Ids.has(id));
    assert.ok(lacking.length > 0 && lacking.length < ids.length, 'the versions share some chunks');
    assert.deepEqual(await missing('alpha', ids, alphaPush), lacking);
    assert.deepEqual(await missing('beta', ids, betaPush), ids.map(hex), 'alpha is not readable with a beta token');
  });

  test('asking needs push permission and a bounded, well-formed list', async () => {
    const ids = v2Chunks.map((c) => c.id);
    const pull = await fetch(`${api}/caches/alpha/missing-chunks`, {
      method: 'POST',
      headers: alphaPull,
      body: Buffer.concat(ids),
    });
    assert.equal(pull.status, 403);
    const ragged = await fetch(`${api}/caches/alpha/missing-chunks`, {
      method: 'POST',
      headers: alphaPush,
      body: Buffer.alloc(33),
    });
    assert.equal(ragged.status, 400);
    const many = await fetch(`${api}/caches/alpha/missing-chunks`, {
      method: 'POST',
      headers: alphaPush,
      body: Buffer.alloc(32 * (MAX_CHUNKS_ASKED + 1)),
    });
    assert.equal(many.status, 413);
  });

  test('a NAR committed as a chunk list with only the lacking chunks sent reads back exact', async () => {
    const held = new Set(v1Chunks.map((c) => hex(c.id)));
    const res = await commit('alpha', v2, chunkListBody(v2Chunks, held), alphaPush);
    assert.equal(res.status, 201, await res.clone().text());
    assert.deepEqual(await res.json(), { narHash: narHashOf(v2), narSize: v2.length });
    const nar = (await t.nw.meta.getNar(narHashOf(v2)))!;
    const bytes = [];
    for await (const piece of readNarBytes(t.nw, nar)) bytes.push(piece);
    assertSameBytes(Buffer.concat(bytes), v2);
  });

  test('a chunk the pusher may not count on answers 409 with its id, and nothing is stored', async () => {
    const v3 = versionNar(3000, 200_000);
    const v3Chunks = await chunksOf(v3);
    const held = new Set(v1Chunks.map((c) => hex(c.id)));
    const res = await commit('beta', v3, chunkListBody(v3Chunks, held), betaPush);
    assert.equal(res.status, 409);
    const { missing: named } = (await res.json()) as { missing: string[] };
    const firstHeld = v3Chunks.map((c) => hex(c.id)).find((id) => held.has(id));
    assert.deepEqual(named, [firstHeld], 'the first chunk named as stored that beta cannot count on');
    assert.equal(await t.nw.meta.getNar(narHashOf(v3)), undefined);
  });

  test('a sent chunk that is not its id, a wrong hash or size, or trailing bytes: 4xx and nothing stored', async () => {
    const v4 = versionNar(4000, 200_000);
    const chunks = await chunksOf(v4);
    const none = new Set<string>();
    const wrongFrame = chunkListBody(chunks, none, (c) => zstdCompressSync(c === chunks[2] ? chunks[1].data : c.data));
    const cases: [string, Promise<Response>, number][] = [
      ['a frame of other bytes', commit('alpha', v4, wrongFrame, alphaPush), 400],
      ['a NarHash of other bytes', commit('alpha', v1, chunkListBody(chunks, none), alphaPush, v4.length), 400],
      ['a wrong narSize', commit('alpha', v4, chunkListBody(chunks, none), alphaPush, v4.length + 1), 400],
      [
        'bytes after the last frame',
        commit('alpha', v4, Buffer.concat([chunkListBody(chunks, none), Buffer.from('x')]), alphaPush),
        400,
      ],
      ['no magic', commit('alpha', v4, Buffer.from('NOPE\x01'), alphaPush), 400],
      ['a list cut short', commit('alpha', v4, chunkListBody(chunks, none).subarray(0, 100), alphaPush), 400],
      ['a pull token', commit('alpha', v4, chunkListBody(chunks, none), alphaPull), 403],
    ];
    for (const [what, response, status] of cases) {
      const res = await response;
      assert.equal(res.status, status, `${what}: ${await res.text()}`);
    }
    assert.equal(await t.nw.meta.getNar(narHashOf(v4)), undefined, 'no NAR was stored');
  });
});
