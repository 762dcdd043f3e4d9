import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import type { NarRecord } from '../../src/metadata/metadata-store.ts';
import { serializeNarinfo } from '../../src/nix/narinfo.ts';
import { createNarwhalServer } from '../../src/server/server.ts';
import { createToken } from '../../src/tenancy/tokens.ts';
import { bodyOf, tempNarwhal, type TempNarwhal } from './narwhal-fixtures.ts';

export interface ServedVersions {
  t: TempNarwhal;
  server: Server;
  /** The cache's URL: `http://127.0.0.1:PORT/main`. */
  base: string;
  /** The NARs' records, in the order given. */
  records: NarRecord[];
  close(): Promise<void>;
}

/**
 * A Narwhal (chunks in `storage`, as tempNarwhal takes it) serving over HTTP the versions of a
 * package: each NAR ingested into cache `main` and named by a narinfo `/nix/store/<hashPart>-tool`
 * uploaded as a pusher does.
 */
export async function serveVersions(
  storage: ((dir: string) => string) | undefined,
  nars: Uint8Array[],
  hashParts: string[],
): Promise<ServedVersions> {
  const t = await tempNarwhal({}, storage);
  const server = createNarwhalServer(t.nw, { log: () => undefined });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
  const auth = { Authorization: `Bearer ${(await createToken(t.nw, { caches: ['main'], perms: ['push'] })).secret}` };
  const main = (await t.nw.meta.getCache('main'))!;
  const records: NarRecord[] = [];
  for (const [i, nar] of nars.entries()) {
    records.push(await ingestNar(t.nw, bodyOf(nar), { compression: 'none', uploadedTo: main.id }));
    const narinfo = serializeNarinfo({
      storePath: `/nix/store/${hashParts[i]}-tool`,
      url: 'nar/x.nar',
      narHash: records[i].narHash,
      narSize: nar.length,
      references: [],
      sigs: [],
    });
    const put = await fetch(`${base}/${hashParts[i]}.narinfo`, { method: 'PUT', body: narinfo, headers: auth });
    assert.equal(put.status, 204);
  }
  return {
    t,
    server,
    base,
    records,
    async close() {
      server.closeAllConnections();
      server.close();
      await t.close();
    },
  };
}
