/**
 * Attacks across tenants and on shared resources, as an outside probe made them: each test
 * reproduces one attack that succeeded once and checks that it is now refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createCache } from '../../src/tenancy/caches.ts';
import { createToken } from '../../src/tenancy/tokens.ts';
import { TaskLimit } from '../../src/runtime/task-limit.ts';
import { writeNar } from '../../src/nix/nar-writer.ts';
import { encodeNixBase32 } from '../../src/nix/base32.ts';
import { answerOf, assertClientError, startHostileServer, type HostileServer } from './hostile-server.ts';

interface Nar {
  bytes: Uint8Array;
  /** nix32 of its sha256, as in `nar/<hash>.nar` URLs. */
  hash: string;
}

function nar(text: string): Nar {
  const bytes = writeNar({ type: 'regular', contents: Buffer.from(text) });
  return { bytes, hash: encodeNixBase32(createHash('sha256').update(bytes).digest()) };
}

function xz(data: Uint8Array): Buffer {
  const result = spawnSync('xz', ['-c', '-T1', '-1'], { input: data });
  assert.equal(result.status, 0, String(result.stderr));
  return result.stdout;
}

function hashPart(c: string): string {
  return c.repeat(32);
}

function narinfo(
  storePath: string,
  n: Nar,
  extra: { narSize?: number; references?: string[]; deriver?: string; sig?: string } = {},
): string {
  return [
    `StorePath: /nix/store/${storePath}`,
    `URL: nar/${n.hash}.nar`,
    'Compression: none',
    `NarHash: sha256:${n.hash}`,
    `NarSize: ${extra.narSize ?? n.bytes.length}`,
    `References: ${(extra.references ?? []).join(' ')}`,
    ...(extra.deriver ? [`Deriver: ${extra.deriver}`] : []),
    ...(extra.sig ? [`Sig: ${extra.sig}`] : []),
    '',
  ].join('\n');
}

describe('hostile tenants: what one token can reach of another cache', () => {
  let h: HostileServer;
  let alphaPush: Record<string, string>;
  let betaPush: Record<string, string>;
  let betaDelete: Record<string, string>;
  let alphaReaderBetaPusher: Record<string, string>;
  let admin: Record<string, string>;
  const secret = nar('only the private cache alpha has this\n');
  const secretPath = `${hashPart('a')}-secret`;

  const bearer = async (caches: string[], perms: ('pull' | 'push' | 'delete' | 'admin')[]) => ({
    Authorization: `Bearer ${(await createToken(h.nw, { caches, perms })).secret}`,
  });
  const at = (cache: string, path: string) => `${h.base}/${cache}/${path}`;
  const send = async (method: string, url: string, headers: Record<string, string> = {}, body?: string | Uint8Array) =>
    answerOf(
      await fetch(url, {
        method,
        headers,
        body: typeof body === 'string' || body === undefined ? body : Buffer.from(body),
      }),
    );

  before(async () => {
    h = await startHostileServer();
    await createCache(h.nw, 'alpha', { isPublic: false });
    await createCache(h.nw, 'beta', { isPublic: true });
    alphaPush = await bearer(['alpha'], ['push']);
    betaPush = await bearer(['beta'], ['push']);
    betaDelete = await bearer(['beta'], ['push', 'delete']);
    alphaReaderBetaPusher = await bearer(['alpha', 'beta'], ['push']);
    admin = await bearer(['*'], ['admin']);
    assert.equal((await send('PUT', at('alpha', `nar/${secret.hash}.nar`), alphaPush, secret.bytes)).status, 204);
    assert.equal(
      (await send('PUT', at('alpha', `${hashPart('a')}.narinfo`), alphaPush, narinfo(secretPath, secret))).status,
      204,
    );
  });
  after(() => h.close());

  test('a push token for beta cannot see, claim or read a NAR only alpha holds', async () => {
    for (const suffix of ['.nar', '.nar.zst']) {
      assert.equal(
        (await send('HEAD', at('beta', `nar/${secret.hash}${suffix}`), betaPush)).status,
        404,
        `HEAD ${suffix}`,
      );
      assert.equal(
        (await send('GET', at('beta', `nar/${secret.hash}${suffix}`), betaPush)).status,
        404,
        `GET ${suffix}`,
      );
    }
    const stolen = hashPart('s');
    for (const narSize of [secret.bytes.length, 5]) {
      const answer = await send(
        'PUT',
        at('beta', `${stolen}.narinfo`),
        betaPush,
        narinfo(`${stolen}-stolen`, secret, { narSize }),
      );
      assertClientError(answer, 400, /no NAR with NarHash/, `claim with NarSize ${narSize}`);
      assert.ok(!answer.body.includes(String(secret.bytes.length)), 'the refusal does not tell the NAR size');
    }
    assert.equal((await send('GET', at('beta', `${stolen}.narinfo`))).status, 404);
    assert.equal((await send('GET', at('beta', `nar/${secret.hash}.nar`))).status, 404, 'nothing readable anonymously');
  });

  test('a pusher to beta who uploads the same bytes gets the path, and the chunks are stored once', async () => {
    const before = await h.nw.meta.stats();
    assert.equal((await send('PUT', at('beta', `nar/${secret.hash}.nar`), betaPush, secret.bytes)).status, 204);
    assert.equal(
      (await send('HEAD', at('beta', `nar/${secret.hash}.nar`), betaPush)).status,
      200,
      'uploaded to beta: visible there',
    );
    const own = hashPart('b');
    assert.equal(
      (await send('PUT', at('beta', `${own}.narinfo`), betaPush, narinfo(`${own}-own`, secret))).status,
      204,
    );
    const after = await h.nw.meta.stats();
    assert.equal(after.chunks, before.chunks, 'no new chunk');
    assert.equal(after.nars, before.nars, 'the same NAR record');
    assert.equal((await send('GET', at('beta', `nar/${secret.hash}.nar`))).body, Buffer.from(secret.bytes).toString());
  });

  test("a token that may read alpha and push to beta sees alpha's NARs through beta, as deduplication wants", async () => {
    const other = nar('alpha only, again\n');
    assert.equal((await send('PUT', at('alpha', `nar/${other.hash}.nar`), alphaPush, other.bytes)).status, 204);
    const path = hashPart('c');
    assert.equal(
      (await send('PUT', at('alpha', `${path}.narinfo`), alphaPush, narinfo(`${path}-other`, other))).status,
      204,
    );
    assert.equal((await send('HEAD', at('beta', `nar/${other.hash}.nar`), betaPush)).status, 404);
    assert.equal((await send('HEAD', at('beta', `nar/${other.hash}.nar`), alphaReaderBetaPusher)).status, 200);
    const claim = hashPart('d');
    assert.equal(
      (await send('PUT', at('beta', `${claim}.narinfo`), alphaReaderBetaPusher, narinfo(`${claim}-other`, other)))
        .status,
      204,
    );
  });

  test('a reference must name a whole store path of the cache, not only its hash', async () => {
    const dep = nar('dependency\n');
    const depPath = `${hashPart('f')}-dep`;
    await send('PUT', at('beta', `nar/${dep.hash}.nar`), betaPush, dep.bytes);
    assert.equal(
      (await send('PUT', at('beta', `${hashPart('f')}.narinfo`), betaPush, narinfo(depPath, dep))).status,
      204,
    );
    const top = nar('top\n');
    await send('PUT', at('beta', `nar/${top.hash}.nar`), betaPush, top.bytes);
    const topHash = hashPart('g');
    const put = (references: string[]) =>
      send('PUT', at('beta', `${topHash}.narinfo`), betaPush, narinfo(`${topHash}-top`, top, { references }));
    assertClientError(
      await put([`${hashPart('f')}-EVIL`]),
      400,
      /references not in this cache: f+-EVIL/,
      'renamed reference',
    );
    assertClientError(await put([`${topHash}-other`]), 400, /references not in this cache/, 'renamed self-reference');
    assert.equal((await send('GET', at('beta', `${topHash}.narinfo`))).status, 404);
    assert.equal((await put([depPath, `${topHash}-top`])).status, 204);
  });

  test('replacing a path needs the delete permission; the same narinfo again is a no-op', async () => {
    const first = nar('first version\n');
    const second = nar('second version\n');
    for (const n of [first, second]) await send('PUT', at('beta', `nar/${n.hash}.nar`), betaPush, n.bytes);
    const path = hashPart('h');
    const original = narinfo(`${path}-thing`, first);
    assert.equal((await send('PUT', at('beta', `${path}.narinfo`), betaPush, original)).status, 204);
    const served = (await send('GET', at('beta', `${path}.narinfo`))).body;
    assert.equal((await send('PUT', at('beta', `${path}.narinfo`), betaPush, original)).status, 204, 'the same again');
    assert.equal((await send('GET', at('beta', `${path}.narinfo`))).body, served);

    const changes = [
      narinfo(`${path}-thing`, second),
      narinfo(`${path}-thing`, first, { deriver: `${hashPart('i')}-thing.drv` }),
      narinfo(`${path}-thing`, first, { references: [`${path}-thing`] }),
    ];
    for (const changed of changes) {
      assertClientError(
        await send('PUT', at('beta', `${path}.narinfo`), betaPush, changed),
        409,
        /delete permission/,
        changed,
      );
      assert.equal((await send('GET', at('beta', `${path}.narinfo`))).body, served, 'left as it was');
    }
    assert.equal((await send('PUT', at('beta', `${path}.narinfo`), betaDelete, changes[0])).status, 204);
    assert.match((await send('GET', at('beta', `${path}.narinfo`))).body, new RegExp(`NarHash: sha256:${second.hash}`));
  });

  test('a signature added to the same path is kept, without the delete permission', async () => {
    const n = nar('signed later\n');
    await send('PUT', at('beta', `nar/${n.hash}.nar`), betaPush, n.bytes);
    const path = hashPart('j');
    assert.equal((await send('PUT', at('beta', `${path}.narinfo`), betaPush, narinfo(`${path}-s`, n))).status, 204);
    const sig = `laptop-1:${Buffer.alloc(64, 7).toString('base64')}`;
    assert.equal(
      (await send('PUT', at('beta', `${path}.narinfo`), betaPush, narinfo(`${path}-s`, n, { sig }))).status,
      204,
    );
    assert.ok((await send('GET', at('beta', `${path}.narinfo`))).body.includes(`Sig: ${sig}`));
  });

  test('upload names are recompressed only for callers who may push, and only a few at once', async () => {
    const n = nar('pushed as xz\n'.repeat(1000));
    const xzBytes = xz(n.bytes);
    const fileHash = encodeNixBase32(createHash('sha256').update(xzBytes).digest());
    assert.equal((await send('PUT', at('beta', `nar/${fileHash}.nar.xz`), betaPush, xzBytes)).status, 204);
    assert.equal((await send('GET', at('beta', `nar/${fileHash}.nar.xz`))).status, 404, 'anonymous');
    assert.equal(
      (await send('GET', at('beta', `nar/${fileHash}.nar.xz`), await bearer(['beta'], ['pull']))).status,
      404,
      'pull only',
    );
    const pushed = await fetch(at('beta', `nar/${fileHash}.nar.xz`), { headers: betaPush });
    assert.equal(pushed.status, 200);
    assert.ok((await pushed.arrayBuffer()).byteLength > 0);

    const limit = h.nw.recompressions;
    h.nw.recompressions = new TaskLimit(0, 0, 'too many NARs are being recompressed; try again shortly');
    try {
      const busy = await send('GET', at('beta', `nar/${fileHash}.nar.xz`), betaPush);
      assert.equal(busy.status, 503);
      assert.match(busy.body, /too many NARs are being recompressed/);
    } finally {
      h.nw.recompressions = limit;
    }
  });

  test('an absurd token lifetime is refused, and a stored one does not break the listing', async () => {
    for (const expires of ['99999999999999999999d', '36501d', '0d']) {
      const answer = await send(
        'POST',
        `${h.base}/_api/v1/tokens`,
        { ...admin, 'Content-Type': 'application/json' },
        JSON.stringify({ caches: ['beta'], perms: ['pull'], expires }),
      );
      assertClientError(answer, 400, /duration|lifetime/, expires);
    }
    const { token } = await createToken(h.nw, { caches: ['beta'], perms: ['pull'] });
    await h.nw.meta.createToken({ ...token, id: 'from-before', expiresAt: 1e20 }, new Uint8Array(32).fill(9));
    await h.nw.meta.revokeToken('from-before', Date.now());
    const listing = await send('GET', `${h.base}/_api/v1/tokens`, admin);
    assert.equal(listing.status, 200);
    const row = (JSON.parse(listing.body) as { id: string; expiresAt: string; revoked: boolean }[]).find(
      (t) => t.id === 'from-before',
    );
    assert.ok(row?.revoked && row.expiresAt.startsWith('+275760'), JSON.stringify(row));
  });

  test('a glob that would backtrack is matched in linear time', { timeout: 20_000 }, async () => {
    const name = 'a'.repeat(63);
    await createCache(h.nw, name, { isPublic: false });
    const glob = await bearer(['a*a*a*a*a*a*a*a*a*b'], ['pull']);
    // A backtracking match of this glob against 63 `a`s takes hours; the test's timeout fails it.
    assert.equal((await send('GET', at(name, 'nix-cache-info'), glob)).status, 200);
    assert.equal((await send('GET', at(name, `${hashPart('k')}.narinfo`), glob)).status, 404);
    const matching = await bearer([`${'a*'.repeat(20)}a`], ['pull']);
    assert.equal(
      (await send('HEAD', at(name, `${hashPart('k')}.narinfo`), matching)).status,
      404,
      'covered, and the path is absent',
    );
  });
});
