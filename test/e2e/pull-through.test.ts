/**
 * Pull-through with stock Nix 2.8 and require-sigs, against an upstream made as cache.nixos.org is:
 * `nix copy --to file://...?compression=xz` with a signing key, served by nginx. Clients trust only
 * the upstream's key, so each copy proves its signatures were kept. A relay in front of nginx counts
 * upstream requests and cuts a NAR midway.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startNginx, type NginxServer } from '../../bench/systems/nginx.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { parseNarinfo } from '../../src/nix/narinfo.ts';
import {
  assertClosureInStore,
  buildClosure,
  makeSigningKey,
  narwhal,
  nixEnv,
  run,
  startServer,
  tempDir,
  copyFrom,
} from './harness.ts';
import type { RunningServer, TestClosure } from './harness.ts';
import { requestsFor, startRelay, type Relay } from './pull-through-relay.ts';

const hashPartOf = (storePath: string): string => storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);

describe('pull-through from an nginx-served file cache', () => {
  let work: { path: string; remove(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  let nginx: NginxServer;
  let relay: Relay;
  let server: RunningServer;
  let publicKey: string;
  /** In the upstream: c1, and c2 for the concurrency test; c1 also signed by another key in 'bad'. */
  let c1: TestClosure;
  let c2: TestClosure;
  /** A path copied to the upstream only during the negative-caching test. */
  let late: string;
  let upstreamCopy: (path: string, dir: string, key: string) => Promise<void>;

  const copy = (cache: string, store: string, paths: string[], name: string, options: string[] = []) =>
    copyFrom(
      `${server.url}/${cache}`,
      store,
      paths,
      publicKey,
      { ...env, XDG_CACHE_HOME: join(work.path, `cache-${name}`) },
      options,
    );
  const pathsOf = async (cache: string): Promise<string[]> =>
    (
      JSON.parse(await narwhal(['path', 'list', cache, '--json', '--data-dir', server.dataDir])) as {
        storePath: string;
      }[]
    ).map((p) => p.storePath);
  /**
   * Waits until the pull of a path Nix just got is stored: Nix is sent the upstream's file as it
   * arrives, and the path is stored behind it; the plain NAR asked for meanwhile waits for that.
   */
  const settled = async (cache: string, path: string): Promise<void> => {
    await (await fetch(`${server.url}/${cache}/pull/${hashPartOf(path)}.nar`)).arrayBuffer();
  };
  const validIn = (store: string, path: string) =>
    run('nix', ['path-info', '--store', store, path], env).then(
      () => true,
      () => false,
    );

  before(async () => {
    work = await tempDir('e2e-pull');
    env = nixEnv(work.path);
    const good = await makeSigningKey(work.path, 'upstream-1', env, 'upstream-1');
    const goodKey = good.secretKey;
    const evilKey = (await makeSigningKey(work.path, 'evil-1', env, 'evil-1')).secretKey;
    publicKey = good.publicKey;
    const nonce = randomBytes(4).toString('hex');
    c1 = await buildClosure(env, work.path, `pull-1-${nonce}`);
    c2 = await buildClosure(env, work.path, `pull-2-${nonce}`);
    await writeFile(join(work.path, 'late.txt'), `late ${nonce}\n`);
    late = (await run('nix-store', ['--add', join(work.path, 'late.txt')], env)).trim();
    upstreamCopy = async (path, dir, secret) => {
      await run(
        'nix',
        ['copy', '--to', `file://${join(work.path, 'up', dir)}?compression=xz&secret-key=${secret}`, path],
        env,
      );
    };
    await upstreamCopy(c1.top, 'good', goodKey);
    await upstreamCopy(c2.top, 'good', goodKey);
    await upstreamCopy(c1.top, 'bad', evilKey);
    // Made ready beside the upstream, and moved in only in the negative-caching test.
    await upstreamCopy(late, 'late', goodKey);
    nginx = await startNginx(join(work.path, 'up'), join(work.path, 'nginx'));
    relay = await startRelay(`${nginx.url}/good`);
    server = await startServer(join(work.path, 'data'), ['--upstream-negative-ttl', '3s', '--upstream-timeout', '5s']);
    const create = (name: string, upstream: string) =>
      narwhal([
        'cache',
        'create',
        name,
        '--public',
        '--upstream',
        upstream,
        '--upstream-key',
        publicKey,
        '--data-dir',
        server.dataDir,
      ]);
    await create('pt', `${nginx.url}/good`);
    await create('badpt', `${nginx.url}/bad`);
    await create('relayed', relay.url);
    await narwhal(['cache', 'configure', 'relayed', '--retention', '1s', '--data-dir', server.dataDir]);
  });

  after(async () => {
    relay?.close();
    await server?.stop();
    await nginx?.stop();
    await work?.remove();
  });

  test('nix copy --from the cache gets the upstream closure, with the upstream signatures', async () => {
    // Until it is stored, a path's narinfo names the upstream's own file, passed on as it arrives.
    const hashPart = hashPartOf(c1.top);
    const upstreamInfo = parseNarinfo(await (await fetch(`${nginx.url}/good/${hashPart}.narinfo`)).text());
    const pulling = parseNarinfo(await (await fetch(`${server.url}/pt/${hashPart}.narinfo`)).text());
    assert.equal(pulling.url, `pull/${hashPart}.nar.xz`);
    assert.equal(pulling.compression, 'xz');
    assert.equal(pulling.fileHash, upstreamInfo.fileHash);
    assert.equal(pulling.fileSize, upstreamInfo.fileSize);
    const store = join(work.path, 'store-a');
    await copy('pt', store, [c1.top], 'a');
    await assertClosureInStore(store, c1, publicKey, env);
    await settled('pt', c1.top);
    assert.deepEqual((await pathsOf('pt')).sort(), [c1.dep, c1.top].sort());
    // Now served from what it stored (zstd frames), still with the upstream's signature.
    const info = parseNarinfo(await (await fetch(`${server.url}/pt/${hashPartOf(c1.top)}.narinfo`)).text());
    assert.equal(info.compression, 'zstd');
    assert.ok(info.sigs.some((sig) => sig.startsWith('upstream-1:')));
    const second = join(work.path, 'store-a2');
    await copy('pt', second, [c1.top], 'a2');
    await assertClosureInStore(second, c1, publicKey, env);
  });

  test('a stored path asked for by the URL of a narinfo given while it was pulled: the upstream file', async () => {
    const hashPart = hashPartOf(c1.top);
    const upstreamInfo = parseNarinfo(await (await fetch(`${nginx.url}/good/${hashPart}.narinfo`)).text());
    const answer = await fetch(`${server.url}/pt/pull/${hashPart}.nar.xz`);
    assert.equal(answer.status, 200);
    const file = Buffer.from(await answer.arrayBuffer());
    assert.equal(formatSha256Nix32(createHash('sha256').update(file).digest()), upstreamInfo.fileHash);
  });

  test("/metrics and the cache's web page show the hits, misses and upstream bytes", async () => {
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      assert.ok(line, `${name} is on /metrics`);
      return Number(line.split(' ')[1]);
    };
    // The copies above pulled c1's two paths (misses, NARs, bytes), then found them stored (hits).
    assert.ok((await metric('narwhal_pull_misses_total')) >= 2);
    assert.ok((await metric('narwhal_pull_hits_total')) >= 2);
    assert.ok((await metric('narwhal_pull_nars_total')) >= 2);
    const bytes = await metric('narwhal_upstream_received_bytes_total');
    assert.ok(bytes > 0);
    const hitsBefore = await metric('narwhal_pull_hits_total');
    assert.equal((await fetch(`${server.url}/pt/${hashPartOf(c1.top)}.narinfo`)).status, 200);
    assert.equal(await metric('narwhal_pull_hits_total'), hitsBefore + 1);
    const page = await (await fetch(`${server.url}/_ui/c/pt`)).text();
    assert.match(page, /<h2>Pull-through<\/h2>/);
    assert.ok(page.includes(`${nginx.url}/good`), 'the page names the upstream');
    assert.match(page, /class="pull-nars">[1-9]\d*</);
  });

  test('a narinfo not signed by an upstream key is refused: 404 and nothing stored', async () => {
    const answer = await fetch(`${server.url}/badpt/${hashPartOf(c1.top)}.narinfo`);
    assert.equal(answer.status, 404);
    await assert.rejects(copy('badpt', join(work.path, 'store-bad'), [c1.top], 'bad'));
    assert.deepEqual(await pathsOf('badpt'), []);
  });

  test('the upstream cut mid-NAR: the client gets an error, nothing is stored, the next copy is whole', async () => {
    const store = join(work.path, 'store-cut');
    relay.cutNextNar = true;
    // Nix retries a cut download by default; one attempt shows what the client of the cut gets.
    await assert.rejects(copy('relayed', store, [c1.top], 'cut', ['--option', 'download-attempts', '1']));
    assert.equal(relay.cutNextNar, false, 'the relay cut a NAR');
    assert.equal(await validIn(store, c1.top), false);
    assert.ok(!(await pathsOf('relayed')).includes(c1.top), 'the cut path was not stored');
    await copy('relayed', store, [c1.top], 'cut-again');
    await assertClosureInStore(store, c1, publicKey, env);
    await settled('relayed', c1.top);
    assert.ok((await pathsOf('relayed')).includes(c1.top));
  });

  test('concurrent requests for one NAR make one upstream fetch', async () => {
    const info = parseNarinfo(await (await fetch(`${server.url}/relayed/${hashPartOf(c2.top)}.narinfo`)).text());
    relay.narDelayMs = 5;
    try {
      const bodies = await Promise.all(
        Array.from({ length: 4 }, async () =>
          Buffer.from(await (await fetch(`${server.url}/relayed/${info.url}`)).arrayBuffer()),
        ),
      );
      // Each is the upstream's own file, as its FileHash says (Nix checks the NarHash inside).
      assert.equal(info.compression, 'xz');
      for (const body of bodies) {
        assert.equal(formatSha256Nix32(createHash('sha256').update(body).digest()), info.fileHash);
      }
    } finally {
      relay.narDelayMs = 0;
    }
    const upstreamInfo = parseNarinfo(await (await fetch(`${nginx.url}/good/${hashPartOf(c2.top)}.narinfo`)).text());
    assert.equal(requestsFor(relay, new RegExp(`^/${upstreamInfo.url}$`)), 1);
    await settled('relayed', c2.top); // stored once the file is whole, behind the answers
    assert.ok((await pathsOf('relayed')).includes(c2.top));
    assert.equal(requestsFor(relay, new RegExp(`^/${upstreamInfo.url}$`)), 1, 'storing it fetched nothing more');
  });

  test('an upstream answer "no such path" is remembered for the negative TTL', async () => {
    const narinfo = `/${hashPartOf(late)}.narinfo`;
    const ask = async () => (await fetch(`${server.url}/relayed${narinfo}`)).status;
    assert.equal(await ask(), 404);
    assert.equal(requestsFor(relay, new RegExp(`^${narinfo}$`)), 1);
    await run('cp', ['-rT', join(work.path, 'up', 'late'), join(work.path, 'up', 'good')]);
    assert.equal(await ask(), 404, 'still remembered');
    assert.equal(requestsFor(relay, new RegExp(`^${narinfo}$`)), 1);
    await new Promise((r) => setTimeout(r, 3100));
    assert.equal(await ask(), 200);
    assert.equal(requestsFor(relay, new RegExp(`^${narinfo}$`)), 2);
  });

  test('retention and GC apply to pulled paths; a later request pulls them again', async () => {
    // c2 was pulled into 'relayed' (retention 1 s) by the concurrency test; c1 by the cut test.
    await new Promise((r) => setTimeout(r, 5100)); // past the server's few seconds of served narinfos
    const gc = JSON.parse(await narwhal(['gc', '--grace', '0', '--json', '--data-dir', server.dataDir])) as object;
    assert.ok(gc);
    assert.deepEqual(await pathsOf('relayed'), []);
    const before = requestsFor(relay, /^\/nar\//);
    const store = join(work.path, 'store-gc');
    await copy('relayed', store, [c2.top], 'gc');
    await assertClosureInStore(store, c2, publicKey, env);
    assert.ok(requestsFor(relay, /^\/nar\//) > before, 'pulled again from the upstream');
  });

  test('with the upstream down, what is stored keeps being served and the rest is 404', async () => {
    await nginx.stop();
    const store = join(work.path, 'store-down');
    await copy('pt', store, [c1.top], 'down');
    await assertClosureInStore(store, c1, publicKey, env);
    assert.equal((await fetch(`${server.url}/pt/${hashPartOf(c2.top)}.narinfo`)).status, 404);
    // A client still holding a narinfo from the pull gets the stored NAR, xz-compressed here.
    const info = parseNarinfo(await (await fetch(`${server.url}/pt/${hashPartOf(c1.top)}.narinfo`)).text());
    const answer = await fetch(`${server.url}/pt/pull/${hashPartOf(c1.top)}.nar.xz`);
    assert.equal(answer.status, 200);
    const nar = spawnSync('xz', ['--decompress', '--stdout'], {
      input: Buffer.from(await answer.arrayBuffer()),
      maxBuffer: 1 << 30,
    });
    assert.equal(nar.status, 0);
    assert.equal(formatSha256Nix32(createHash('sha256').update(nar.stdout).digest()), info.narHash);
  });
});
