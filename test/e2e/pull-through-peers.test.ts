/**
 * Pull-through from another Narwhal: a private cache reached with a token from a netrc file, and
 * `narwhal substituter` in front of the pull-through cache moving only what the machine lacks.
 * Clients trust only the upstream cache's key, so every copy proves its signatures were kept.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AssemblyFigures } from '../../src/client/nar-assembly.ts';
import {
  stopProcess,
  assertClosureInStore,
  buildClosure,
  narwhal,
  nixEnv,
  REPO,
  run,
  startServer,
  tempDir,
  writeNetrc,
  copyFrom,
} from './harness.ts';
import type { RunningServer, TestClosure } from './harness.ts';

describe('pull-through from a private Narwhal cache', () => {
  let work: { path: string; remove(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  let upstream: RunningServer;
  let server: RunningServer;
  let publicKey: string;
  let v1: TestClosure;
  let v2: TestClosure;
  const substituters: ChildProcess[] = [];

  const copy = (from: string, store: string, paths: string[], name: string) =>
    copyFrom(from, store, paths, publicKey, { ...env, XDG_CACHE_HOME: join(work.path, `cache-${name}`) });

  before(async () => {
    work = await tempDir('e2e-pull-peers');
    env = nixEnv(work.path);
    upstream = await startServer(join(work.path, 'upstream'));
    const up = (args: string[]) => narwhal([...args, '--data-dir', upstream.dataDir]);
    await up(['cache', 'create', 'priv']);
    publicKey = (JSON.parse(await up(['cache', 'info', 'priv', '--json'])) as { publicKey: string }).publicKey;
    const token = (
      JSON.parse(await up(['token', 'create', '--cache', 'priv', '--perm', 'pull,push', '--json'])) as {
        secret: string;
      }
    ).secret;
    await writeNetrc(work.path, token);
    const nonce = randomBytes(4).toString('hex');
    v1 = await buildClosure(env, work.path, `peer-a-${nonce}`);
    v2 = await buildClosure(env, work.path, `peer-b-${nonce}`);
    await run('nix', ['copy', '--to', `${upstream.url}/priv?compression=zstd`, v1.top, v2.top], env);
    // The clients below hold no credentials: only the pull-through server has them.
    await writeFile(join(work.path, 'netrc'), '');

    const netrc = join(work.path, 'server-netrc');
    await writeFile(netrc, `machine 127.0.0.1 login narwhal password ${token}\n`, { mode: 0o600 });
    server = await startServer(join(work.path, 'data'), ['--netrc-file', netrc]);
    await narwhal([
      'cache',
      'create',
      'fromb',
      '--public',
      '--upstream',
      `${upstream.url}/priv`,
      '--upstream-key',
      publicKey,
      '--data-dir',
      server.dataDir,
    ]);
  });

  after(async () => {
    await Promise.all(substituters.map(stopProcess));
    await server?.stop();
    await upstream?.stop();
    await work?.remove();
  });

  test('the upstream is private; with netrc credentials the cache pulls from it', async () => {
    const hashPart = v1.top.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    assert.notEqual((await fetch(`${upstream.url}/priv/${hashPart}.narinfo`)).status, 200);
    const store = join(work.path, 'store-a');
    await copy(`${server.url}/fromb`, store, [v1.top], 'a');
    await assertClosureInStore(store, v1, publicKey, env);
    // Nix got the upstream's file while the path was stored behind it; the plain NAR waits for the store.
    await (await fetch(`${server.url}/fromb/pull/${hashPart}.nar`)).arrayBuffer();
    const paths = JSON.parse(await narwhal(['path', 'list', 'fromb', '--json', '--data-dir', server.dataDir])) as {
      storePath: string;
    }[];
    assert.deepEqual(paths.map((p) => p.storePath).sort(), [v1.dep, v1.top].sort());
  });

  test('narwhal substituter in front of it fetches only what the machine lacks of an upstream path', async () => {
    const store = join(work.path, 'store-a');
    const child = spawn(
      process.execPath,
      [
        join(REPO, 'bin/narwhal.js'),
        'substituter',
        '--cache',
        `${server.url}/fromb`,
        '--listen',
        '127.0.0.1:0',
        '--store',
        store,
        '--cache-dir',
        join(work.path, 'chunks'),
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    substituters.push(child);
    let log = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        const m = /serving (http:\/\/[\d.]+:\d+)\//.exec(log);
        if (m) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`narwhal substituter exited with ${code}: ${log}`)));
    });
    await copy(url, store, [v2.top], 'subst');
    await assertClosureInStore(store, v2, publicKey, env);
    const stats = (await (await fetch(`${url}/_narwhal/stats`)).json()) as AssemblyFigures & { fallbacks: number };
    assert.equal(stats.fallbacks, 0, 'assembled from chunks, not passed through');
    assert.ok(stats.chunksLocal > 0, 'chunks of the previous version are used');
    const narSize = Number(JSON.parse(await run('nix', ['path-info', '--json', v2.top], env))[0].narSize);
    assert.ok(stats.bytesFromServer < narSize / 4, `${stats.bytesFromServer} B fetched for ${narSize} B of NAR`);
  });
});
