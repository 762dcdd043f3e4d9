import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { localAdmin } from '../../../src/tenancy/admin-operations.ts';
import { encodeNixBase32 } from '../../../src/nix/base32.ts';
import { serializeNarinfo } from '../../../src/nix/narinfo.ts';
import { decodeCaibx } from '../../../src/storage/caibx.ts';
import { narHashOf, realisticNar, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';

const HASH_A = '0'.repeat(31) + 'a';
const HASH_B = '1'.repeat(31) + 'b';

describe('binary cache protocol over HTTP', () => {
  let t: TempNarwhal;
  let server: Server;
  let base: string;
  let nar: Uint8Array;
  let narHash: string;

  const url = (path: string) => `${base}/main/${path}`;
  let auth: Record<string, string>;
  const put = (path: string, body: Uint8Array | string, headers: Record<string, string> = {}) =>
    fetch(url(path), {
      method: 'PUT',
      body: typeof body === 'string' ? body : Buffer.from(body),
      headers: { ...auth, ...headers },
    });

  function narinfoFor(hashPart: string, references: string[] = []): string {
    return serializeNarinfo({
      storePath: `/nix/store/${hashPart}-test`,
      url: 'nar/whatever.nar',
      compression: 'none',
      narHash,
      narSize: nar.length,
      references,
      sigs: [],
    });
  }

  before(async () => {
    t = await tempNarwhal();
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    nar = await realisticNar('protocol');
    const { secret } = await createToken(t.nw, { caches: ['main'], perms: ['push'] });
    auth = { Authorization: `Bearer ${secret}` };
    narHash = narHashOf(nar);
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('nix-cache-info', async () => {
    const res = await fetch(url('nix-cache-info'));
    assert.equal(res.status, 200);
    const publicKey = (await localAdmin(t.nw).cacheInfo('main')).publicKey;
    assert.equal(await res.text(), `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\nPublicKey: ${publicKey}\n`);
    assert.equal((await put('nix-cache-info', 'StoreDir: /nix/store\n')).status, 204);
    assert.equal((await put('nix-cache-info', 'StoreDir: /other/store\n')).status, 400);
  });

  test('unknown paths and caches are 404, HEAD included, never 405', async () => {
    for (const path of [
      '/main/nope',
      '/main/nar/zz.nar',
      '/nocache/nix-cache-info',
      `/main/${HASH_A}.narinfo`,
      '/main/../etc/passwd',
      '/main/log/..%2F..%2Fetc',
      '/main/castr/0000/' + '0'.repeat(64) + '.cacnk',
    ]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(base + path, { method });
        assert.equal(res.status, 404, `${method} ${path}`);
      }
    }
  });

  test('a NAR upload is checked against the hash in its URL', async () => {
    const wrong = encodeNixBase32(new Uint8Array(32).fill(1));
    const res = await put(`nar/${wrong}.nar`, nar);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /does not hash to/);
    assert.equal((await t.nw.meta.stats()).nars, 0);
  });

  test('a narinfo naming a NAR that was never uploaded is refused', async () => {
    const res = await put(`${HASH_A}.narinfo`, narinfoFor(HASH_A));
    assert.equal(res.status, 400);
    assert.match(await res.text(), /no NAR with NarHash/);
  });

  test('upload, then serve as frames, as plain bytes with Range, and as a casync index', async () => {
    const upload = `nar/${narHash.slice(7)}.nar`;
    assert.equal((await put(upload, nar)).status, 204);
    // The pusher learns the upload is stored; anyone else sees it only once a path of this cache uses it.
    assert.equal((await fetch(url(upload), { method: 'HEAD', headers: auth })).status, 200);
    assert.equal((await fetch(url(upload), { method: 'HEAD' })).status, 404);

    // References must already be in the cache; a self-reference is fine.
    const missingRef = await put(`${HASH_A}.narinfo`, narinfoFor(HASH_A, [`${HASH_B}-dep`]));
    assert.equal(missingRef.status, 400);
    assert.match(await missingRef.text(), /references not in this cache/);
    const mismatched = await put(`${HASH_B}.narinfo`, narinfoFor(HASH_A));
    assert.equal(mismatched.status, 400);
    assert.equal((await put(`${HASH_B}.narinfo`, narinfoFor(HASH_B, [`${HASH_B}-test`]))).status, 204);
    assert.equal(
      (await put(`${HASH_A}.narinfo`, narinfoFor(HASH_A, [`${HASH_B}-test`, `${HASH_A}-test`]))).status,
      204,
    );

    const info = await (await fetch(url(`${HASH_A}.narinfo`))).text();
    const fields = Object.fromEntries(
      info
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
    );
    assert.equal(fields.StorePath, `/nix/store/${HASH_A}-test`);
    assert.equal(fields.Compression, 'zstd');
    assert.equal(fields.NarHash, narHash);
    assert.equal(fields.References, `${HASH_B}-test ${HASH_A}-test`);
    const head = await fetch(url(`${HASH_A}.narinfo`), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await fetch(url(upload), { method: 'HEAD' })).status, 200);

    const frames = await fetch(url(fields.URL));
    assert.equal(frames.status, 200);
    const framesBody = Buffer.from(await frames.arrayBuffer());
    assert.equal(framesBody.length, Number(fields.FileSize));
    assert.equal(Number(frames.headers.get('content-length')), framesBody.length);
    assertSameBytes(unzstd(framesBody), Buffer.from(nar));

    const plainUrl = url(`nar/${narHash.slice(7)}.nar`);
    const plain = await fetch(plainUrl);
    assert.equal(plain.headers.get('accept-ranges'), 'bytes');
    assert.equal(plain.headers.get('content-encoding'), null);
    assertSameBytes(Buffer.from(await plain.arrayBuffer()), Buffer.from(nar));
    const ranged = await fetch(plainUrl, { headers: { Range: 'bytes=1000-200000' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes 1000-200000/${nar.length}`);
    assertSameBytes(Buffer.from(await ranged.arrayBuffer()), Buffer.from(nar.subarray(1000, 200001)));
    const tail = await fetch(plainUrl, { headers: { Range: 'bytes=-10' } });
    assertSameBytes(Buffer.from(await tail.arrayBuffer()), Buffer.from(nar.subarray(nar.length - 10)));
    assert.equal((await fetch(plainUrl, { headers: { Range: `bytes=${nar.length}-` } })).status, 416);

    const index = decodeCaibx(new Uint8Array(await (await fetch(url(`nar/${narHash.slice(7)}.caibx`))).arrayBuffer()));
    assert.equal(index.chunks.at(-1)!.end, nar.length);
    let start = 0;
    for (const chunk of index.chunks) {
      const hex = Buffer.from(chunk.id).toString('hex');
      const res = await fetch(url(`castr/${hex.slice(0, 4)}/${hex}.cacnk`));
      assert.equal(res.status, 200);
      const data = unzstd(Buffer.from(await res.arrayBuffer()));
      assertSameBytes(data, Buffer.from(nar.subarray(start, chunk.end)));
      assert.equal(createHash('sha256').update(data).digest('hex'), hex);
      start = chunk.end;
    }
  });

  test('build logs and other files keep their content type and encoding', async () => {
    const name = `log/${HASH_A}-test.drv`;
    assert.equal((await put(name, 'build output\n', { 'Content-Type': 'text/plain; charset=utf-8' })).status, 204);
    const res = await fetch(url(name));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(await res.text(), 'build output\n');
    const realisation = `realisations/sha256:${'ab'.repeat(32)}!out.doi`;
    assert.equal((await put(realisation, '{"id":"x"}', { 'Content-Type': 'application/json' })).status, 204);
    assert.equal(await (await fetch(url(realisation.replace('!', '%21')))).text(), '{"id":"x"}');
    assert.equal((await put(realisation, 'not json')).status, 400);
  });

  test('unsupported methods answer 405 with Allow, and a bad compression stream is a 400', async () => {
    const res = await fetch(url('nix-cache-info'), { method: 'DELETE' });
    assert.equal(res.status, 405);
    const bad = await put(`nar/${encodeNixBase32(new Uint8Array(32).fill(3))}.nar.xz`, 'definitely not xz');
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /xz/);
  });
});

/** The zstd CLI as the oracle: Node's zstd stops after the first frame, real clients do not. */
function unzstd(data: Uint8Array): Buffer {
  return execFileSync('zstd', ['-d', '-c'], { input: data, maxBuffer: 1 << 30 });
}
