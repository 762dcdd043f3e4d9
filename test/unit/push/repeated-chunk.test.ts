/**
 * A chunk list that names a stored chunk twice in a row, on the pack store, as concurrent pushes
 * made it happen (node releases pushed with --jobs 8, one storing a chunk its NAR repeats while
 * another named it): both are read in one batch, and each is checked on a worker. It is committed
 * and served exact (it was a 500: the two were views of one buffer, the first check moved it away).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { zstdCompressSync } from 'node:zlib';
import { writeNar } from '../../../src/nix/nar-writer.ts';
import { encodeChunkListEntry, encodeChunkListHeader } from '../../../src/push/chunk-list-body.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { createCache } from '../../../src/tenancy/caches.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { addPath, narHashOf, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';
import { seededBytes } from '../../helpers/test-data.ts';

test('a stored chunk named twice in a row is committed and served exact, on the pack store', async () => {
  const t = await tempNarwhal({}, (dir) => `pack:${dir}/chunks`);
  await createCache(t.nw, 'pushed', { isPublic: false });
  const server = createNarwhalServer(t.nw, { log: () => undefined });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const headers = {
    Authorization: `Bearer ${(await createToken(t.nw, { caches: ['pushed'], perms: ['pull', 'push'] })).secret}`,
  };
  try {
    // The same 40 KB twice in a file (a frame this large is read into a buffer of its own); the
    // client cuts each copy as a chunk of its own.
    const repeated = seededBytes(40_000, 31);
    const narWith = (tail: number): Uint8Array =>
      writeNar({
        type: 'regular',
        contents: Buffer.concat([seededBytes(10_000, 30), repeated, repeated, seededBytes(10_000, tail)]),
      });
    /** The chunk list: the repeated chunk named when `held`, every other chunk sent as a frame. */
    const listOf = (nar: Uint8Array, held: boolean): Buffer => {
      const at = Buffer.from(nar).indexOf(repeated);
      const ends = [at, at + repeated.length, at + 2 * repeated.length, nar.length];
      const parts: Uint8Array[] = [encodeChunkListHeader()];
      let start = 0;
      for (const [i, end] of ends.entries()) {
        const data = nar.subarray(start, end);
        start = end;
        const id = new Uint8Array(createHash('sha256').update(data).digest());
        const named = held && (i === 1 || i === 2);
        parts.push(named ? encodeChunkListEntry(id) : encodeChunkListEntry(id, zstdCompressSync(data)));
      }
      return Buffer.concat(parts);
    };
    const commit = (nar: Uint8Array, held: boolean) =>
      fetch(`${base}/_api/v1/caches/pushed/nars?narHash=${narHashOf(nar)}&narSize=${nar.length}`, {
        method: 'POST',
        headers,
        body: listOf(nar, held),
      });
    const first = narWith(32);
    assert.equal((await commit(first, false)).status, 201);
    const second = narWith(33);
    const res = await commit(second, true);
    assert.equal(res.status, 201, await res.clone().text());
    const record = (await t.nw.meta.getNar(narHashOf(second)))!;
    await addPath(t.nw, 'pushed', record);
    const nar = await fetch(`${base}/pushed/nar/${record.narHash.slice('sha256:'.length)}.nar`, { headers });
    assert.equal(nar.status, 200);
    assertSameBytes(Buffer.from(await nar.arrayBuffer()), Buffer.from(second));
  } finally {
    server.closeAllConnections();
    server.close();
    await t.close();
  }
});
