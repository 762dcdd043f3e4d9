import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  buildClosure,
  makeSigningKey,
  narwhal,
  nixEnv,
  REPO,
  run,
  startServer,
  tempDir,
  type TestClosure,
  copyFrom,
} from './harness.ts';

/** Runs `narwhal import` and returns its exit status and output, also when it fails. */
function narwhalImport(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO, 'bin/narwhal.js'), 'import', ...args], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

async function pathCount(dataDir: string): Promise<number> {
  return (JSON.parse(await narwhal(['stats', '--data-dir', dataDir, '--json'])) as { paths: number }).paths;
}

describe('narwhal import of a static binary cache written by Nix 2.8', () => {
  let work: { path: string; remove(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  let secretKey: string;
  let publicKey: string;

  before(async () => {
    work = await tempDir('import');
    env = nixEnv(work.path);
    ({ secretKey, publicKey } = await makeSigningKey(work.path, 'narwhal-import-1', env));
  });

  after(async () => {
    await work?.remove();
  });

  async function staticCache(closure: TestClosure, name: string, compression: string): Promise<string> {
    const dir = join(work.path, `static-${name}`);
    await run(
      'nix',
      [
        'copy',
        '--to',
        `file://${dir}?compression=${compression}&secret-key=${secretKey}&write-nar-listing=1`,
        closure.top,
        closure.added,
      ],
      env,
    );
    return dir;
  }

  for (const compression of ['xz', 'zstd', 'none']) {
    test(`compression=${compression}: import, then substitute from narwhal serve with the uploader's key trusted`, async () => {
      const closure = await buildClosure(env, work.path, `import-${compression}-${randomBytes(4).toString('hex')}`);
      const dir = await staticCache(closure, compression, compression);
      await run('nix', ['store', 'copy-log', '--to', `file://${dir}`, closure.topDrv], env);
      const dataDir = join(work.path, `data-${compression}`);

      const first = await narwhalImport([dir, '--data-dir', dataDir]);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assert.match(first.stdout, /^3\/3 paths: 3 imported, 0 already present, 0 failed/);
      assert.match(first.stdout, /; 4 logs and listings/); // three .ls and one log
      assert.equal(await pathCount(dataDir), 3);

      const again = await narwhalImport([dir, '--data-dir', dataDir]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(again.stdout, /^3\/3 paths: 0 imported, 3 already present, 0 failed/);

      const server = await startServer(dataDir);
      try {
        const store = join(work.path, `store-${compression}`);
        const freshEnv = { ...env, XDG_CACHE_HOME: join(work.path, `cache-${compression}`) };
        await copyFrom(`${server.url}/main`, store, [closure.top, closure.added], publicKey, freshEnv);
        assert.equal(await readFile(join(store, closure.top, 'dep'), 'utf8'), `${closure.dep}\n`);
        assert.equal(await readFile(join(store, closure.top, 'self'), 'utf8'), `${closure.top}\n`);
        assert.ok((await readFile(join(store, closure.top, 'bin/tool'))).equals(await readFile('/usr/bin/nix')));
        const verify = await run(
          'nix',
          ['store', 'verify', '--store', store, '--trusted-public-keys', publicKey, '-r', closure.top, closure.added],
          freshEnv,
        );
        assert.equal(verify.trim(), '');

        const log = await fetch(`${server.url}/main/log/${basename(closure.topDrv)}`);
        assert.equal(log.status, 200);
        assert.match(await log.text(), /building top import-/);
        const topHash = basename(closure.top).slice(0, 32);
        // The NAR is also found under the name Nix gave it, so a client that pushed it skips it;
        // a name served recompressed only by a caller who may push (docs/security.md).
        const url = /^URL: (.*)$/m.exec(await readFile(join(dir, `${topHash}.narinfo`), 'utf8'))![1];
        const push = JSON.parse(
          await narwhal(['token', 'create', '--data-dir', dataDir, '--cache', 'main', '--perm', 'push', '--json']),
        ) as { secret: string };
        const head = (headers: Record<string, string>) =>
          fetch(`${server.url}/main/${url}`, { method: 'HEAD', headers }).then((r) => r.status);
        assert.equal(await head({ Authorization: `Bearer ${push.secret}` }), 200, url);
        assert.equal(await head({}), compression === 'xz' ? 404 : 200, `anonymous ${url}`);
        const listing = await fetch(`${server.url}/main/${topHash}.ls`);
        assert.equal(listing.status, 200);
        assert.equal(await listing.text(), await readFile(join(dir, `${topHash}.ls`), 'utf8'));
      } finally {
        await server.stop();
      }
    });
  }

  test('a corrupted NAR file fails its path, which is not stored; the rest is imported', async () => {
    const closure = await buildClosure(env, work.path, `import-corrupt-${randomBytes(4).toString('hex')}`);
    const dir = await staticCache(closure, 'corrupt', 'none');
    const topHash = basename(closure.top).slice(0, 32);
    const url = /^URL: (.*)$/m.exec(await readFile(join(dir, `${topHash}.narinfo`), 'utf8'))![1];
    const nar = await readFile(join(dir, url));
    nar[nar.length >> 1] ^= 0x01;
    await writeFile(join(dir, url), nar);
    const dataDir = join(work.path, 'data-corrupt');

    const result = await narwhalImport([dir, '--data-dir', dataDir]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /^3\/3 paths: 2 imported, 0 already present, 1 failed/);
    assert.ok(result.stdout.includes(`failed: ${closure.top}: `), result.stdout);
    assert.equal(await pathCount(dataDir), 2);
    const server = await startServer(dataDir);
    try {
      assert.equal((await fetch(`${server.url}/main/${topHash}.narinfo`)).status, 404);
      assert.equal((await fetch(`${server.url}/main/${basename(closure.dep).slice(0, 32)}.narinfo`)).status, 200);
    } finally {
      await server.stop();
    }
  });

  test('a path whose reference is neither in the cache nor in the directory is reported and skipped', async () => {
    const closure = await buildClosure(env, work.path, `import-missing-${randomBytes(4).toString('hex')}`);
    const dir = await staticCache(closure, 'missing', 'zstd');
    await rm(join(dir, `${basename(closure.dep).slice(0, 32)}.narinfo`));
    const dataDir = join(work.path, 'data-missing');

    const result = await narwhalImport([dir, '--data-dir', dataDir]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /^2\/2 paths: 1 imported, 0 already present, 1 failed/);
    assert.ok(
      result.stdout.includes(
        `failed: ${closure.top}: references neither in the cache nor in the directory: ${basename(closure.dep)}`,
      ),
      result.stdout,
    );
    assert.equal(await pathCount(dataDir), 1);
  });
});
