/**
 * `narwhal push` with the real Nix 2.8 store on both deployments (topology.ts): a closure pushed
 * by chunks, then substituted by stock Nix into a fresh store with signatures required; a new
 * version sends only the chunks the cache lacks; a second push sends nothing; the token comes from
 * the user's netrc when not given; --watch-store pushes what appears in the store.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { PushProgress } from '../../src/client/push.ts';
import {
  assertClosureInStore,
  buildClosure,
  makeSigningKey,
  nixEnv,
  REPO,
  run,
  tempDir,
  type TestClosure,
  copyFrom,
} from './harness.ts';
import { startEmbedded, startSharedReplicas, type Topology } from './topology.ts';

const TOPOLOGIES = [
  { title: 'one server on the embedded default', start: startEmbedded },
  { title: 'PostgreSQL + S3, two replicas', start: startSharedReplicas },
];

for (const { title, start } of TOPOLOGIES)
  describe(`narwhal push against narwhal serve: ${title}`, () => {
    let work: { path: string; remove(): Promise<void> };
    let topology: Topology;
    let cache: string;
    let env: NodeJS.ProcessEnv;
    let secretKey: string;
    let publicKey: string;
    let token: string;
    let first: TestClosure;

    const push = async (paths: string[], extraEnv: NodeJS.ProcessEnv = { NARWHAL_TOKEN: token }) =>
      JSON.parse(
        await run(
          process.execPath,
          [join(REPO, 'bin/narwhal.js'), 'push', '--cache', cache, '--signing-key', secretKey, '--json', ...paths],
          { ...env, ...extraEnv },
        ),
      ) as PushProgress & { seconds: number };

    /** Substitutes the closure into a fresh store with stock Nix, checking signatures, and compares its files. */
    const substitute = async (closure: TestClosure, name: string): Promise<void> => {
      const store = join(work.path, `store-${name}`);
      const clientEnv = { ...env, XDG_CACHE_HOME: join(work.path, `cache-${name}`) };
      await copyFrom(cache, store, [closure.top, closure.added], publicKey, clientEnv);
      await assertClosureInStore(store, closure, publicKey, clientEnv);
    };

    before(async () => {
      work = await tempDir('e2e-push');
      env = nixEnv(work.path);
      ({ secretKey, publicKey } = await makeSigningKey(work.path, 'narwhal-push-1', env));
      topology = await start(work.path);
      cache = `${topology.url}/main`;
      token = (
        JSON.parse(await topology.narwhal(['token', 'create', '--cache', 'main', '--perm', 'push', '--json'])) as {
          secret: string;
        }
      ).secret;
    });

    after(async () => {
      try {
        await topology?.stop();
      } finally {
        await work?.remove();
      }
    });

    test('a closure pushed by chunks substitutes into a fresh store with signatures required', async () => {
      first = await buildClosure(env, work.path, `push-${randomBytes(4).toString('hex')}`);
      const result = await push([first.top, first.added]);
      assert.equal(result.paths, 3, 'top, dep and the added path');
      assert.deepEqual([result.cached, result.pushed], [0, 3]);
      assert.ok(result.chunksSent > 0 && result.chunksSent <= result.chunks);
      const posts = topology.writer.requests().filter((line) => line.startsWith('POST /_api/v1/caches/main/nars'));
      assert.equal(posts.length, 3, 'one chunk-list upload per NAR');
      for (const line of posts) assert.match(line, / 201$/);
      await substitute(first, 'first');
    });

    test('a new version sends only the chunks the cache lacks', async () => {
      const second = await buildClosure(env, work.path, `push-${randomBytes(4).toString('hex')}`);
      const result = await push([second.top, second.added]);
      assert.deepEqual([result.cached, result.pushed], [0, 3]);
      assert.ok(
        result.chunksSent < result.chunks / 2,
        `the copy of the nix binary is already there: ${result.chunksSent} of ${result.chunks} chunks sent`,
      );
      assert.ok(result.bytesSent < result.narBytes / 4, `${result.bytesSent} B sent for ${result.narBytes} B of NAR`);
      await substitute(second, 'second');
    });

    test('pushing again sends nothing', async () => {
      const result = await push([first.top, first.added]);
      assert.deepEqual([result.paths, result.cached, result.pushed, result.bytesSent], [3, 3, 0, 0]);
    });

    test("the token may come from the user's netrc", async () => {
      await writeFile(join(work.path, '.netrc'), `machine 127.0.0.1 login narwhal password ${token}\n`, {
        mode: 0o600,
      });
      const other = await buildClosure(env, work.path, `push-${randomBytes(4).toString('hex')}`);
      const result = await push([other.top], { NARWHAL_TOKEN: '' });
      assert.deepEqual([result.cached, result.pushed], [0, 2]);
    });

    test('--watch-store pushes each path that becomes valid, until stopped', async () => {
      const watcher = spawn(
        process.execPath,
        [join(REPO, 'bin/narwhal.js'), 'push', '--watch-store', '--cache', cache],
        {
          env: { ...env, NARWHAL_TOKEN: token },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let log = '';
      watcher.stderr.on('data', (d: Buffer) => {
        log += d.toString();
      });
      try {
        while (!log.includes('watching the Nix store')) await delay(50);
        const dir = join(work.path, `watched-${randomBytes(4).toString('hex')}`);
        await mkdir(dir);
        await writeFile(join(dir, 'file'), `new ${dir}\n`);
        const added = (await run('nix-store', ['--add', dir], env)).trim();
        const narinfo = `${cache}/${basename(added).slice(0, 32)}.narinfo`;
        const deadline = Date.now() + 60_000;
        while ((await fetch(narinfo, { method: 'HEAD' })).status !== 200) {
          assert.ok(Date.now() < deadline, `the watcher pushed ${added} within a minute:\n${log}`);
          await delay(200);
        }
      } finally {
        const exited = once(watcher, 'exit');
        watcher.kill('SIGTERM');
        assert.deepEqual((await exited).slice(0, 1), [0], 'it stops cleanly on SIGTERM');
      }
    });

    test('without a token the push fails, saying so', async () => {
      const other = await buildClosure(env, work.path, `push-${randomBytes(4).toString('hex')}`);
      await writeFile(join(work.path, '.netrc'), '');
      await assert.rejects(push([other.top], { NARWHAL_TOKEN: '' }), /401|needs a token/);
    });
  });
