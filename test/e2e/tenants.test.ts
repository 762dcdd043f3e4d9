import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  buildClosure,
  makeSigningKey,
  narwhal,
  nixEnv,
  run,
  type RunningServer,
  startServer,
  tempDir,
  type TestClosure,
  writeNetrc,
  copyFrom,
} from './harness.ts';

interface CacheInfoJson {
  name: string;
  public: boolean;
  publicKey: string;
}

describe('caches, tokens and signing with the real Nix 2.8 client', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;
  let adminToken: string;
  let tokenA: { id: string; secret: string };
  let tokenB: { id: string; secret: string };
  let closure: TestClosure;
  let teamA: CacheInfoJson;

  const api = (args: string[]) => narwhal([...args, '--server', server.url, '--token', adminToken]);
  const stats = async () =>
    JSON.parse(await narwhal(['stats', '--data-dir', server.dataDir, '--json'])) as Record<string, number>;
  const status = async (path: string, token?: string, method = 'GET') =>
    (await fetch(`${server.url}${path}`, { method, headers: token ? { Authorization: `Bearer ${token}` } : {} }))
      .status;

  before(async () => {
    work = await tempDir('tenants');
    env = nixEnv(work.path);
    server = await startServer(join(work.path, 'data'));
    // The first admin token comes from the local stores; everything after goes through the API.
    adminToken = (
      JSON.parse(
        await narwhal(['token', 'create', '--data-dir', server.dataDir, '--cache', '*', '--perm', 'admin', '--json']),
      ) as { secret: string }
    ).secret;
    teamA = JSON.parse(await api(['cache', 'create', 'team-a', '--json'])) as CacheInfoJson;
    await api(['cache', 'create', 'team-b', '--json']);
    tokenA = JSON.parse(
      await api(['token', 'create', '--cache', 'team-a', '--perm', 'pull,push', '--name', 'ci-a', '--json']),
    ) as typeof tokenA;
    tokenB = JSON.parse(
      await api(['token', 'create', '--cache', 'team-*', '--perm', 'push', '--json']),
    ) as typeof tokenB;
    closure = await buildClosure(env, work.path, `tenants-${randomBytes(4).toString('hex')}`);
  });

  after(async () => {
    await server?.stop();
    await work?.remove();
  });

  test('cache info shows a Nix public key named after the cache, and the caches are private', async () => {
    assert.match(teamA.publicKey, /^team-a-1:[A-Za-z0-9+/]{43}=$/);
    assert.equal(teamA.public, false);
    const listed = JSON.parse(await api(['cache', 'list', '--json'])) as CacheInfoJson[];
    assert.deepEqual(
      listed.map((c) => c.name),
      ['main', 'team-a', 'team-b'],
    );
  });

  test('push with a netrc token, then substitute with require-sigs trusting only the cache key', async () => {
    await writeNetrc(work.path, tokenA.secret);
    // No secret-key on push: the cache's own signature is the only one.
    await run('nix', ['copy', '--to', `${server.url}/team-a?compression=zstd`, closure.top], env);
    // Substitute as another machine would: the pushing Nix keeps the narinfos it wrote in its
    // local cache, and those lack the signature the server adds.
    const store = join(work.path, 'store-a');
    await copyFrom(`${server.url}/team-a`, store, [closure.top], teamA.publicKey, {
      ...env,
      XDG_CACHE_HOME: join(work.path, 'xdg-a1'),
    });
    assert.equal(await readFile(join(store, closure.top, 'dep'), 'utf8'), `${closure.dep}\n`);
    // The same paths are refused when only another key is trusted.
    await assert.rejects(
      copyFrom(
        `${server.url}/team-a`,
        join(work.path, 'store-a2'),
        [closure.top],
        'other-1:' + Buffer.alloc(32, 1).toString('base64'),
        { ...env, XDG_CACHE_HOME: join(work.path, 'xdg-a2') },
      ),
      /lacks a valid signature/,
    );
  });

  test('anonymous reads of a private cache find nothing, the castr and caibx view included', async () => {
    const hashPart = closure.top.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    assert.equal(await status(`/team-a/${hashPart}.narinfo`), 404);
    assert.equal(await status(`/team-a/${hashPart}.narinfo`, undefined, 'HEAD'), 404);
    assert.equal(await status(`/team-a/${hashPart}.narinfo`, tokenA.secret), 200);
    const narinfo = await (
      await fetch(`${server.url}/team-a/${hashPart}.narinfo`, { headers: { Authorization: `Bearer ${tokenA.secret}` } })
    ).text();
    const narHash = /^NarHash: sha256:(\S+)$/m.exec(narinfo)![1];
    const url = /^URL: (\S+)$/m.exec(narinfo)![1];
    assert.equal(await status(`/team-a/${url}`), 404);
    assert.equal(await status(`/team-a/nar/${narHash}.caibx`), 404);
    const caibx = Buffer.from(
      await (
        await fetch(`${server.url}/team-a/nar/${narHash}.caibx`, {
          headers: { Authorization: `Bearer ${tokenA.secret}` },
        })
      ).arrayBuffer(),
    );
    const id = caibx.subarray(64 + 8, 64 + 40).toString('hex');
    const chunkPath = `castr/${id.slice(0, 4)}/${id}.cacnk`;
    assert.equal(await status(`/team-a/${chunkPath}`, tokenA.secret), 200);
    assert.equal(await status(`/team-a/${chunkPath}`), 404);
    // The public cache does not hand out chunks only team-a's paths use.
    assert.equal(await status(`/main/${chunkPath}`), 404);
    // And Nix without credentials sees no such path.
    const anonymous = {
      ...env,
      NIX_CONFIG: env.NIX_CONFIG!.replace(/netrc-file = .*/, `netrc-file = ${join(work.path, 'no-netrc')}`),
      XDG_CACHE_HOME: join(work.path, 'xdg-anon'),
    };
    await assert.rejects(
      run('nix', ['path-info', '--store', `${server.url}/team-a`, closure.top], anonymous),
      /is not valid/,
    );
  });

  test("a push to another tenant's cache is refused", async () => {
    await writeNetrc(work.path, tokenA.secret);
    await assert.rejects(
      run('nix', ['copy', '--to', `${server.url}/team-b?compression=zstd`, closure.top], {
        ...env,
        XDG_CACHE_HOME: join(work.path, 'xdg-b'),
      }),
      /403|may not push/,
    );
    assert.equal(await status(`/team-b/${closure.top.slice(11, 43)}.narinfo`, tokenA.secret), 404);
  });

  test('the same closure pushed to a second cache stores its chunks once', async () => {
    const before = await stats();
    await writeNetrc(work.path, tokenB.secret);
    await run('nix', ['copy', '--to', `${server.url}/team-b?compression=xz`, closure.top], {
      ...env,
      XDG_CACHE_HOME: join(work.path, 'xdg-b2'),
    });
    const after = await stats();
    assert.equal(after.paths, before.paths + 2);
    assert.equal(after.nars, before.nars);
    assert.equal(after.chunks, before.chunks);
    assert.equal(after.storedBytes, before.storedBytes);
  });

  test('a cache can require uploads signed by a trusted key', async () => {
    const { secretKey: sk, publicKey: uploaderKey } = await makeSigningKey(work.path, 'uploader-1', env, 'up');
    await api(['cache', 'create', 'team-signed']);
    await api(['cache', 'configure', 'team-signed', '--trusted-key', uploaderKey, '--require-signature']);
    await writeNetrc(work.path, tokenB.secret);
    const other = await buildClosure(env, work.path, `signed-${randomBytes(4).toString('hex')}`);
    await assert.rejects(
      run('nix', ['copy', '--to', `${server.url}/team-signed?compression=zstd`, other.dep], {
        ...env,
        XDG_CACHE_HOME: join(work.path, 'xdg-s1'),
      }),
      /403/,
    );
    await run('nix', ['copy', '--to', `${server.url}/team-signed?compression=zstd&secret-key=${sk}`, other.dep], {
      ...env,
      XDG_CACHE_HOME: join(work.path, 'xdg-s2'),
    });
  });

  test('a revoked token is refused on its next request', async () => {
    const hashPart = closure.top.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    assert.equal(await status(`/team-a/${hashPart}.narinfo`, tokenA.secret), 200);
    const listed = await api(['token', 'list']);
    assert.match(listed, new RegExp(`^${tokenA.id}\\tci-a\\t`, 'm'));
    await api(['token', 'revoke', tokenA.id]);
    assert.equal(await status(`/team-a/${hashPart}.narinfo`, tokenA.secret), 401);
    await writeNetrc(work.path, tokenA.secret);
    const again = await buildClosure(env, work.path, `revoked-${randomBytes(4).toString('hex')}`);
    await assert.rejects(
      run('nix', ['copy', '--to', `${server.url}/team-a?compression=zstd`, again.dep], {
        ...env,
        XDG_CACHE_HOME: join(work.path, 'xdg-r'),
      }),
    );
    assert.match(await api(['token', 'list']), new RegExp(`^${tokenA.id}\\t.*REVOKED$`, 'm'));
  });

  test('cache names that would collide with server routes are refused, and destroy removes a cache', async () => {
    await assert.rejects(api(['cache', 'create', '_api']), /invalid cache name/);
    await assert.rejects(api(['cache', 'create', 'team-a']), /already exists/);
    await api(['cache', 'destroy', 'team-signed']);
    assert.equal(await status('/team-signed/nix-cache-info', adminToken), 404);
    await writeFile(join(work.path, 'unused'), '');
  });
});
