/**
 * Two `narwhal serve` replicas sharing one PostgreSQL database and one S3 prefix, driven by the
 * real Nix 2.8: a push through one is served by the other at once, concurrent pushes of
 * overlapping closures store each NAR and chunk once, and GC beside them breaks neither.
 * Uses the servers scripts/test.sh starts, or starts its own (never skips).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertSameBytes } from '../helpers/bytes.ts';
import { buildClosure, nixEnv, run, tempDir, writeNetrc, type RunningServer, copyFrom } from './harness.ts';
import { startSharedReplicas, type SharedTopology } from './topology.ts';

interface Stats {
  paths: number;
  nars: number;
  chunks: number;
  chunkBytes: number;
}

describe('two narwhal serve replicas sharing PostgreSQL and S3', () => {
  let work: { path: string; remove(): Promise<void> };
  let topology: SharedTopology;
  let a: RunningServer;
  let b: RunningServer;
  let env: NodeJS.ProcessEnv;
  let publicKey: string;
  const pushed = new Set<string>();
  const substitutable: string[] = [];

  /** Every key under the replicas' S3 prefix. */
  const objects = (): Promise<string[]> => topology.bucket.keys(topology.prefix);

  before(async () => {
    work = await tempDir('replicas');
    env = nixEnv(work.path);
    // Each test names replica A or B itself: the front of the topology is not used here.
    topology = await startSharedReplicas(work.path);
    [a, b] = topology.replicas;
    const token = JSON.parse(
      await topology.narwhal(['token', 'create', '--cache', 'main', '--perm', 'push', '--json']),
    ) as { secret: string };
    await writeNetrc(work.path, token.secret);
    const info = JSON.parse(await topology.narwhal(['cache', 'info', 'main', '--json'])) as { publicKey: string };
    publicKey = info.publicKey;
    assert.match(publicKey, /^main-1:/);
  });

  after(async () => {
    try {
      await topology?.stop();
    } finally {
      await work?.remove();
    }
  });

  /** Substitutes `paths` from `server` into a fresh store, as a machine that has never seen the cache. */
  async function substitute(server: RunningServer, paths: string[], tag: string): Promise<string> {
    const dest = join(work.path, `store-${tag}`);
    const clientEnv = { ...env, XDG_CACHE_HOME: join(work.path, `xdg-${tag}`) };
    await copyFrom(`${server.url}/main`, dest, paths, publicKey, clientEnv);
    await run(
      'nix',
      ['store', 'verify', '--store', dest, '--trusted-public-keys', publicKey, '-r', ...paths],
      clientEnv,
    );
    return dest;
  }

  async function closurePaths(paths: string[]): Promise<string[]> {
    return (await run('nix-store', ['-qR', ...paths], env)).trim().split('\n');
  }

  test('a path pushed through replica A is served by replica B at once', async () => {
    const closure = await buildClosure(env, work.path, `replicas-${randomBytes(4).toString('hex')}`);
    await run('nix', ['copy', '--to', `${a.url}/main`, closure.top, closure.added], {
      ...env,
      XDG_CACHE_HOME: join(work.path, 'xdg-push1'),
    });
    for (const p of await closurePaths([closure.top, closure.added])) pushed.add(p);
    substitutable.push(closure.top, closure.added);

    const fresh = { ...env, XDG_CACHE_HOME: join(work.path, 'xdg-info1') };
    const infos = JSON.parse(
      await run('nix', ['path-info', '--store', `${b.url}/main`, '--json', '-r', closure.top], fresh),
    ) as { path: string; signatures?: string[] }[];
    assert.deepEqual(infos.map((p) => p.path).sort(), [closure.dep, closure.top].sort());
    for (const info of infos)
      assert.ok(
        info.signatures?.some((s) => s.startsWith('main-1:')),
        `${info.path} is signed by main-1`,
      );

    const dest = await substitute(b, [closure.top, closure.added], 'b1');
    assert.equal(await readFile(join(dest, closure.top, 'dep'), 'utf8'), `${closure.dep}\n`);
    assertSameBytes(await readFile(join(dest, closure.top, 'bin/tool')), await readFile('/usr/bin/nix'));
    assert.ok(
      b.requests().some((line) => /^GET \/main\/nar\/\S+ 200$/.test(line)),
      'B served the NARs',
    );
    assert.ok(!a.requests().some((line) => line.startsWith('GET /main/nar/')), 'A served no NAR');
  });

  test('concurrent pushes of overlapping closures through A and B store each NAR and chunk once', async () => {
    const nonce = randomBytes(4).toString('hex');
    // Two tops sharing one dep and one large binary; they differ only in a small file.
    const expr = (variant: string) => `
      let dep = derivation {
        name = "narwhal-shared-dep"; system = builtins.currentSystem; builder = "/bin/sh";
        nonce = "${nonce}"; args = [ "-c" "echo dep $nonce > $out" ];
      };
      in derivation {
        name = "narwhal-top-${variant}"; system = builtins.currentSystem; builder = "/bin/sh";
        nonce = "${nonce}"; inherit dep;
        args = [ "-c" "/bin/mkdir -p $out/bin && /bin/cp /usr/bin/nix $out/bin/tool && echo $dep > $out/dep && echo ${variant} > $out/variant" ];
      }`;
    const tops: string[] = [];
    for (const variant of ['a', 'b']) {
      const file = join(work.path, `overlap-${variant}.nix`);
      await writeFile(file, expr(variant));
      tops.push((await run('nix-build', ['--no-out-link', file], env)).trim());
    }
    const [topA, topB] = tops;
    const closureA = await closurePaths([topA]);
    const closureB = await closurePaths([topB]);
    assert.equal(closureA.filter((p) => closureB.includes(p)).length, 1, 'the closures share dep');

    await Promise.all([
      run('nix', ['copy', '--to', `${a.url}/main`, topA], { ...env, XDG_CACHE_HOME: join(work.path, 'xdg-push-a') }),
      run('nix', ['copy', '--to', `${b.url}/main`, topB], { ...env, XDG_CACHE_HOME: join(work.path, 'xdg-push-b') }),
    ]);
    for (const p of [...closureA, ...closureB]) pushed.add(p);
    substitutable.push(topA, topB);

    const stats = JSON.parse(await topology.narwhal(['stats', '--json'])) as Stats;
    assert.equal(stats.paths, pushed.size);
    assert.equal(stats.nars, pushed.size);
    const chunkObjects = (await objects()).filter((key) => /^[0-9a-f]{4}\/[0-9a-f]{64}\.cacnk$/.test(key));
    assert.equal(stats.chunks, chunkObjects.length, 'each recorded chunk is one object, none stored twice');
    // Three copies of the ~3 MB binary, its chunks held once.
    assert.ok(stats.chunkBytes < 2 * 3_400_000, `chunkBytes ${stats.chunkBytes}`);

    // Each replica serves what the other pushed.
    await substitute(a, [topB], 'a-from-b');
    await substitute(b, [topA], 'b-from-a');
  });

  test('narwhal gc beside both replicas leaves them serving', async () => {
    const before = JSON.parse(await topology.narwhal(['stats', '--json'])) as Stats;
    await topology.narwhal(['gc', '--grace', '0', '--json']);
    const afterGc = JSON.parse(await topology.narwhal(['stats', '--json'])) as Stats;
    assert.deepEqual(afterGc, before, 'every path is live: GC deletes nothing');
    assert.equal((await objects()).length, before.chunks);
    await substitute(a, substitutable, 'a-after-gc');
    await substitute(b, substitutable, 'b-after-gc');
  });
});
