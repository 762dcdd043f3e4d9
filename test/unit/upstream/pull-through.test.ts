/**
 * Pull-through against a hostile or broken upstream, in process: what it sends is stored only when
 * a trusted key signed it and the NAR is the signed one; a client is never handed a NAR that ends
 * cleanly when the pull failed.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { configureCache, createCache } from '../../../src/tenancy/caches.ts';
import { parseNarinfo, serializeNarinfo } from '../../../src/nix/narinfo.ts';
import { generateSigningKey, narinfoFingerprint, signFingerprint } from '../../../src/nix/signing.ts';
import { formatSha256Nix32 } from '../../../src/nix/hash.ts';
import { pullCountersSnapshot } from '../../../src/upstream/pull-counters.ts';
import type { CacheRecord } from '../../../src/metadata/metadata-store.ts';
import {
  narHashOf,
  randomHashPart,
  realisticNar,
  tempNarwhal,
  type TempNarwhal,
} from '../../helpers/narwhal-fixtures.ts';

const key = generateSigningKey('up-1');
const otherKey = generateSigningKey('other-1');

/** What the fake upstream answers, per test. */
interface Upstream {
  narinfos: Map<string, string>;
  nar: Uint8Array;
  /** Never answer narinfo requests (a hung upstream). */
  hang: boolean;
  narRequests: number;
}

describe('pull-through against a broken or hostile upstream', () => {
  let t: TempNarwhal;
  let server: Server;
  let upstreamServer: Server;
  let base: string;
  let cache: CacheRecord;
  let goodNar: Uint8Array;
  let otherNar: Uint8Array;
  const upstream: Upstream = { narinfos: new Map(), nar: new Uint8Array(), hang: false, narRequests: 0 };

  /** A narinfo for a new path with goodNar's hash and size, signed by `signer`. */
  const offer = (
    overrides: { storePathHash?: string; url?: string; signer?: typeof key; references?: string[] } = {},
  ): string => {
    const hashPart = randomHashPart();
    const info = {
      storePath: `/nix/store/${overrides.storePathHash ?? hashPart}-thing`,
      url: overrides.url ?? 'nar/x.nar',
      compression: 'none',
      narHash: narHashOf(goodNar),
      narSize: goodNar.length,
      references: overrides.references ?? [],
      sigs: [] as string[],
    };
    info.sigs = [signFingerprint(narinfoFingerprint(info), (overrides.signer ?? key).secretKey)];
    upstream.narinfos.set(hashPart, serializeNarinfo(info));
    return hashPart;
  };

  before(async () => {
    goodNar = await realisticNar('the signed one');
    otherNar = await realisticNar('not signed one');
    assert.equal(goodNar.length, otherNar.length);
    upstreamServer = createServer((req, res) => {
      const path = req.url ?? '/';
      const narinfo = /^\/([0-9a-z]{32})\.narinfo$/.exec(path);
      if (narinfo) {
        if (upstream.hang) return;
        const text = upstream.narinfos.get(narinfo[1]);
        if (!text) return void res.writeHead(404).end();
        return void res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo' }).end(text);
      }
      if (path === '/nar/x.nar') {
        upstream.narRequests++;
        return void res.writeHead(200, { 'Content-Length': upstream.nar.length }).end(upstream.nar);
      }
      res.writeHead(404).end();
    });
    upstreamServer.listen(0, '127.0.0.1');
    await once(upstreamServer, 'listening');
    t = await tempNarwhal({ upstreamNegativeMs: 0, upstreamTimeoutMs: 500 });
    cache = await createCache(t.nw, 'pt', {
      isPublic: true,
      upstreams: [`http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}`],
      upstreamKeys: [key.publicKey],
    });
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pt`;
  });

  beforeEach(() => {
    upstream.nar = goodNar;
    upstream.hang = false;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    upstreamServer.closeAllConnections();
    upstreamServer.close();
    await t.close();
  });

  const stored = async (hashPart: string) => (await t.nw.meta.getPath(cache.id, hashPart)) !== undefined;
  /** The client's copy may arrive before the path is stored behind it: waits for the store, within limits. */
  const storedSoon = async (hashPart: string): Promise<boolean> => {
    for (let tries = 0; tries < 200; tries++) {
      if (await stored(hashPart)) return true;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return false;
  };

  test('a signed path is served with the upstream signature and stored; then served from chunks', async () => {
    const hashPart = offer();
    const before = pullCountersSnapshot(t.nw);
    const info = parseNarinfo(await (await fetch(`${base}/${hashPart}.narinfo`)).text());
    assert.equal(info.url, `pull/${hashPart}.nar`);
    assert.equal(info.compression, 'none');
    assert.ok(info.sigs.some((sig) => sig.startsWith('up-1:')));
    assert.ok(info.sigs.some((sig) => sig.startsWith('pt-1:')));
    const head = await fetch(`${base}/${info.url}`, { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), String(goodNar.length));
    assert.equal(await stored(hashPart), false, 'HEAD does not pull');
    const body = Buffer.from(await (await fetch(`${base}/${info.url}`)).arrayBuffer());
    assert.equal(formatSha256Nix32(createHash('sha256').update(body).digest()), info.narHash);
    // Asked again while it is being stored, or after, it is the same file.
    const stored2 = Buffer.from(await (await fetch(`${base}/${info.url}`)).arrayBuffer());
    assert.ok(stored2.equals(body));
    assert.equal(await storedSoon(hashPart), true);
    const again = parseNarinfo(await (await fetch(`${base}/${hashPart}.narinfo`)).text());
    assert.equal(again.compression, 'zstd');
    assert.ok(again.sigs.some((sig) => sig.startsWith('up-1:')));
    const after = pullCountersSnapshot(t.nw);
    assert.equal(after.misses - before.misses, 1);
    assert.equal(after.hits - before.hits, 1);
    assert.equal(after.narsPulled - before.narsPulled, 1);
    assert.ok(after.upstreamBytes - before.upstreamBytes >= goodNar.length);
  });

  test('a NAR other than the signed one: the client is cut off and nothing is stored', async () => {
    const hashPart = offer();
    upstream.nar = otherNar;
    const before = pullCountersSnapshot(t.nw);
    const res = await fetch(`${base}/pull/${hashPart}.nar`);
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer());
    assert.equal(await stored(hashPart), false);
    assert.ok(pullCountersSnapshot(t.nw).upstreamErrors > before.upstreamErrors);
    // The upstream mends its ways: the next request pulls it whole.
    upstream.nar = goodNar;
    const body = Buffer.from(await (await fetch(`${base}/pull/${hashPart}.nar`)).arrayBuffer());
    assert.equal(narHashOf(body), narHashOf(goodNar));
    assert.equal(await storedSoon(hashPart), true);
  });

  test('a NAR asked for before its references: they are pulled too, and the path is stored after them', async () => {
    const dependency = offer();
    const top = offer({ references: [`${dependency}-thing`] });
    const info = parseNarinfo(await (await fetch(`${base}/${top}.narinfo`)).text());
    const body = Buffer.from(await (await fetch(`${base}/${info.url}`)).arrayBuffer());
    assert.equal(narHashOf(body), info.narHash);
    assert.equal(await storedSoon(top), true);
    assert.equal(await stored(dependency), true);
  });

  test('narinfos refused: untrusted key, another path, a NAR URL off the upstream', async () => {
    const refused = [
      offer({ signer: otherKey }),
      offer({ storePathHash: randomHashPart() }),
      offer({ url: 'http://127.0.0.1:1/nar/x.nar' }),
    ];
    for (const hashPart of refused) {
      assert.equal((await fetch(`${base}/${hashPart}.narinfo`)).status, 404, hashPart);
      assert.equal((await fetch(`${base}/pull/${hashPart}.nar`)).status, 404);
      assert.equal(await stored(hashPart), false);
    }
  });

  test('upstreams are asked in order; one that is down or lacks the path is passed over', async () => {
    const good = cache.upstreams[0];
    const dead = 'http://127.0.0.1:1';
    const lacking = `${good}/elsewhere`;
    const reordered = await configureCache(t.nw, 'pt', { upstreams: [dead, lacking, good] });
    try {
      const hashPart = offer();
      const before = pullCountersSnapshot(t.nw);
      const info = parseNarinfo(await (await fetch(`${base}/${hashPart}.narinfo`)).text());
      assert.ok(info.sigs.some((sig) => sig.startsWith('up-1:')));
      assert.equal(pullCountersSnapshot(t.nw).upstreamErrors - before.upstreamErrors, 1, 'the dead one');
      const body = Buffer.from(await (await fetch(`${base}/${info.url}`)).arrayBuffer());
      assert.equal(narHashOf(body), info.narHash);
    } finally {
      await configureCache(t.nw, 'pt', { upstreams: [good] });
    }
    assert.deepEqual(reordered.upstreams, [dead, lacking, good]);
  });

  test('an upstream that does not answer in time: 404, not a hang', async () => {
    const hashPart = offer();
    upstream.hang = true;
    assert.equal((await fetch(`${base}/${hashPart}.narinfo`)).status, 404);
  });
});
