/**
 * Chunk lists of version 2 (src/push/chunk-list-body.ts): chunks sent as deltas of chunks the
 * server has. The server decodes them against its own copies of the bases and checks each id;
 * a bad delta is refused with 400, a base the pusher may not count on (absent, or only another
 * tenant's) with 409 naming it, the same either way; nothing is stored on a refusal.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, zstdCompressSync } from 'node:zlib';
import { deltaDictionary } from '../../../src/delta/stored-form.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import {
  CHUNK_LIST_VERSION_HEADER,
  encodeChunkListEntry,
  encodeChunkListHeader,
} from '../../../src/push/chunk-list-body.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { readNarBytes } from '../../../src/serving/nar-reader.ts';
import { createCache } from '../../../src/tenancy/caches.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { addPath, bodyOf, narHashOf, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { type Chunk, chunksOf, hex } from '../../helpers/nar-chunks.ts';

const deltaOf = (data: Uint8Array, bases: Chunk[]): Uint8Array =>
  zstdCompressSync(data, {
    dictionary: deltaDictionary(bases.map((b) => b.data)),
    params: { [constants.ZSTD_c_compressionLevel]: 3 },
  } as Parameters<typeof zstdCompressSync>[1]);

/**
 * A version-2 body of `chunks`: those in `held` named, the rest sent as deltas against the chunk
 * of `old` at the same index (what `basesOf` gives, by default), or plain with no base.
 */
function deltaBody(
  chunks: Chunk[],
  held: Set<string>,
  basesOf: (i: number) => Chunk[],
  frameOf = (c: Chunk, bases: Chunk[]) => deltaOf(c.data, bases),
  version: 1 | 2 = 2,
): Buffer {
  const parts: Uint8Array[] = [encodeChunkListHeader(version)];
  for (const [i, c] of chunks.entries()) {
    if (held.has(hex(c.id))) parts.push(encodeChunkListEntry(c.id));
    else {
      const bases = basesOf(i);
      parts.push(
        bases.length > 0
          ? encodeChunkListEntry(
              c.id,
              frameOf(c, bases),
              bases.map((b) => b.id),
            )
          : encodeChunkListEntry(c.id, zstdCompressSync(c.data)),
      );
    }
  }
  return Buffer.concat(parts);
}

describe('pushing chunks as deltas', () => {
  let t: TempNarwhal;
  let server: Server;
  let api: string;
  let alphaPush: Record<string, string>;
  let betaPush: Record<string, string>;
  const v1 = versionNar(1100, 150_000);
  let v1Chunks: Chunk[];
  let held: Set<string>;

  const commit = (cache: string, nar: Uint8Array, body: Buffer, headers: Record<string, string>) =>
    fetch(`${api}/caches/${cache}/nars?narHash=${narHashOf(nar)}&narSize=${nar.length}`, {
      method: 'POST',
      headers,
      body,
    });
  /** v1's chunk at the same index as the new one's, when that is not the same chunk. */
  const samePlace = (chunks: Chunk[]) => (i: number) =>
    v1Chunks[i] && hex(v1Chunks[i].id) !== hex(chunks[i].id) ? [v1Chunks[i]] : [];

  before(async () => {
    t = await tempNarwhal();
    await createCache(t.nw, 'alpha', { isPublic: false });
    await createCache(t.nw, 'beta', { isPublic: false });
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_api/v1`;
    alphaPush = {
      Authorization: `Bearer ${(await createToken(t.nw, { caches: ['alpha'], perms: ['pull', 'push'] })).secret}`,
    };
    betaPush = {
      Authorization: `Bearer ${(await createToken(t.nw, { caches: ['beta'], perms: ['pull', 'push'] })).secret}`,
    };
    v1Chunks = await chunksOf(v1);
    held = new Set(v1Chunks.map((c) => hex(c.id)));
    await addPath(t.nw, 'alpha', await ingestNar(t.nw, bodyOf(v1), { compression: 'none' }));
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('the missing-chunks answer says the server reads chunk lists of version 2', async () => {
    const res = await fetch(`${api}/caches/alpha/missing-chunks`, { method: 'POST', headers: alphaPush, body: '' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(CHUNK_LIST_VERSION_HEADER), '2');
  });

  test('a NAR whose new chunks come as deltas of the previous version reads back exact, for fewer bytes', async () => {
    const v2 = versionNar(2100, 150_000);
    const chunks = await chunksOf(v2);
    const body = deltaBody(chunks, held, samePlace(chunks));
    const plain = deltaBody(chunks, held, () => []);
    assert.ok(body.length < plain.length / 4, `deltas: ${body.length} B, plain frames: ${plain.length} B`);
    const res = await commit('alpha', v2, body, alphaPush);
    assert.equal(res.status, 201, await res.clone().text());
    const nar = (await t.nw.meta.getNar(narHashOf(v2)))!;
    const bytes = [];
    for await (const piece of readNarBytes(t.nw, nar)) bytes.push(piece);
    assertSameBytes(Buffer.concat(bytes), v2);
  });

  test('a delta that decodes to other bytes, or made with other bases, is refused with 400 and nothing stored', async () => {
    const v3 = versionNar(3100, 150_000);
    const chunks = await chunksOf(v3);
    const sent = chunks.findIndex((c) => !held.has(hex(c.id)));
    const others = chunks.findIndex((c, i) => i > sent && !held.has(hex(c.id)));
    const wrongContent = deltaBody(chunks, held, samePlace(chunks), (c, bases) =>
      deltaOf(c === chunks[sent] ? chunks[others].data : c.data, bases),
    );
    // Made with the chunk at the same place, but naming the one after it (which alpha has too).
    const otherBases = deltaBody(
      chunks,
      held,
      (i) => (i === sent ? [v1Chunks[i + 1]] : samePlace(chunks)(i)),
      (c, bases) => deltaOf(c.data, c === chunks[sent] ? [v1Chunks[sent]] : bases),
    );
    for (const [what, body] of [
      ['other bytes', wrongContent],
      ['other bases named than used', otherBases],
      ['a delta in a version-1 list', deltaBody(chunks, held, samePlace(chunks), undefined, 1)],
    ] as const) {
      const res = await commit('alpha', v3, body, alphaPush);
      const text = await res.text();
      assert.equal(res.status, 400, `${what}: ${text}`);
      assert.match(text, /delta sent as [0-9a-f]{64} does not decode|kind is 0 or 1, not 2/, what);
    }
    assert.equal(await t.nw.meta.getNar(narHashOf(v3)), undefined, 'no NAR was stored');
  });

  test("a base only another tenant's cache holds is refused as one that exists nowhere", async () => {
    const v4 = versionNar(4100, 150_000);
    const chunks = await chunksOf(v4);
    const nowhere: Chunk = { id: randomBytes(32), data: randomBytes(1000) };
    const answers: unknown[] = [];
    for (const basesOf of [samePlace(chunks), (i: number) => (held.has(hex(chunks[i].id)) ? [] : [nowhere])]) {
      // beta holds nothing of alpha's: every chunk goes as a delta (or plain when it has no base).
      const res = await commit('beta', v4, deltaBody(chunks, new Set(), basesOf), betaPush);
      assert.equal(res.status, 409);
      const { missingBases } = (await res.json()) as { missingBases: string[] };
      assert.equal(missingBases.length, 1);
      answers.push(missingBases[0] === hex(nowhere.id) ? 'nowhere' : held.has(missingBases[0]) ? 'alpha' : 'other');
    }
    assert.deepEqual(answers, ['alpha', 'nowhere'], 'each names the base it was given, in the same words');
    assert.equal(await t.nw.meta.getNar(narHashOf(v4)), undefined, 'no NAR was stored');
  });
});
