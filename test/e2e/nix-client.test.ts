/**
 * The real Nix 2.8 client (`nix copy`, `nix path-info`, `nix log`, ...) against each deployment
 * in topology.ts: one server on the embedded default, and two replicas sharing PostgreSQL and S3
 * where pushes go through replica A and every read through replica B.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  assertClosureInStore,
  buildClosure,
  makeSigningKey,
  nixEnv,
  run,
  tempDir,
  type TestClosure,
  writeNetrc,
  copyFrom,
} from './harness.ts';
import { startEmbedded, startSharedReplicas, type Topology } from './topology.ts';

const COMPRESSIONS = ['none', 'xz', 'zstd', 'bzip2', 'br', 'gzip', 'lz4'] as const;

const TOPOLOGIES = [
  { title: 'one server on the embedded default (SQLite + local chunks)', start: startEmbedded },
  { title: 'PostgreSQL + S3, two replicas: pushes through A, reads through B', start: startSharedReplicas },
];

for (const { title, start } of TOPOLOGIES)
  describe(`real Nix 2.8 client against narwhal serve: ${title}`, () => {
    let work: { path: string; remove(): Promise<void> };
    let topology: Topology;
    /** The cache as clients address it. */
    let cache: string;
    let env: NodeJS.ProcessEnv;
    let secretKey: string;
    let publicKey: string;
    /** The Authorization header of the push token the pushing Nix has in its netrc. */
    let pushAuth: Record<string, string>;
    const closures = new Map<string, TestClosure>();

    before(async () => {
      work = await tempDir('e2e');
      env = nixEnv(work.path);
      ({ secretKey, publicKey } = await makeSigningKey(work.path, 'narwhal-test-1', env));
      topology = await start(work.path);
      cache = `${topology.url}/main`;
      const token = JSON.parse(
        await topology.narwhal(['token', 'create', '--cache', 'main', '--perm', 'push', '--json']),
      ) as { secret: string };
      await writeNetrc(work.path, token.secret);
      pushAuth = { Authorization: `Bearer ${token.secret}` };
    });

    after(async () => {
      try {
        await topology?.stop();
      } finally {
        await work?.remove();
      }
    });

    for (const compression of COMPRESSIONS) {
      test(`push with compression=${compression}, then substitute into a fresh store with signatures checked`, async () => {
        const closure = await buildClosure(env, work.path, `${compression}-${randomBytes(4).toString('hex')}`);
        closures.set(compression, closure);
        const to = `${cache}?compression=${compression}&secret-key=${secretKey}`;
        await run('nix', ['copy', '--to', to, closure.top, closure.added], env);

        const putNars = topology.writer.requests().filter((line) => line.startsWith('PUT /main/nar/'));
        assert.ok(putNars.length >= 3, `expected NAR uploads, saw ${putNars.length}`);
        for (const line of putNars) assert.match(line, / 204$/, line);
        // The name the client uploaded each NAR under now exists, so it would not upload it again.
        // Names served recompressed exist only for callers who may push (docs/security.md).
        for (const line of putNars) {
          const path = line.split(' ')[1];
          const head = (headers: Record<string, string>) =>
            fetch(`${topology.url}${path}`, { method: 'HEAD', headers }).then((r) => r.status);
          assert.equal(await head(pushAuth), 200, `HEAD ${path}`);
          const recompressed = /\.nar\.(xz|bz2|br|lz4)$/.test(path);
          if (recompressed || path.endsWith('.nar.zst'))
            assert.equal(await head({}), recompressed ? 404 : 200, `anonymous HEAD ${path}`);
        }

        // Twice: once as the pushing machine, whose Nix remembers the narinfos it wrote (with the
        // upload's URL and compression), and once as a fresh machine that reads ours.
        for (const client of ['pusher', 'fresh']) {
          const clientEnv =
            client === 'pusher' ? env : { ...env, XDG_CACHE_HOME: join(work.path, `cache-${compression}-fresh`) };
          const store = join(work.path, `store-${compression}-${client}`);
          await copyFrom(cache, store, [closure.top, closure.added], publicKey, clientEnv);
          await assertClosureInStore(store, closure, publicKey, clientEnv);
          const fetched = topology.reader.requests().filter((line) => line.startsWith('GET /main/nar/'));
          const uploadedNames = putNars.map((line) => line.split(' ')[1]);
          if (client === 'pusher') {
            for (const name of uploadedNames)
              assert.ok(fetched.includes(`GET ${name} 200`), `the pusher fetched ${name}`);
          } else {
            assert.ok(
              fetched.some((line) => line.endsWith('.nar.zst 200')),
              'a fresh client follows our narinfo to .nar.zst',
            );
          }
        }
      });
    }

    test('a substitution from an untrusted key is refused', async () => {
      const closure = closures.get('zstd')!;
      const store = join(work.path, 'store-untrusted');
      const other = 'other-key-1:' + Buffer.alloc(32, 7).toString('base64');
      await assert.rejects(copyFrom(cache, store, [closure.top], other, env), /lacks a valid signature|no signature/);
    });

    test('nix path-info and nix store verify against the cache', async () => {
      const closure = closures.get('xz')!;
      const remote = JSON.parse(
        await run('nix', ['path-info', '--store', cache, '--json', '-r', closure.top], env),
      ) as { path: string; narHash: string; narSize: number; references: string[]; signatures?: string[] }[];
      const local = JSON.parse(await run('nix', ['path-info', '--json', '-r', closure.top], env)) as typeof remote;
      assert.deepEqual(remote.map((p) => p.path).sort(), local.map((p) => p.path).sort());
      for (const info of remote) {
        const mine = local.find((p) => p.path === info.path)!;
        assert.equal(info.narHash, mine.narHash);
        assert.equal(info.narSize, mine.narSize);
        assert.deepEqual([...info.references].sort(), [...mine.references].sort());
        assert.ok(
          info.signatures?.some((s) => s.startsWith('narwhal-test-1:')),
          `${info.path} keeps its uploaded signature`,
        );
      }
      const top = remote.find((p) => p.path === closure.top)!;
      assert.ok(top.references.includes(closure.top), 'self-reference kept');
      assert.ok(top.references.includes(closure.dep));
      await run(
        'nix',
        ['store', 'verify', '--store', cache, '--trusted-public-keys', publicKey, '-r', closure.top],
        env,
      );
    });

    test('nix log reads a build log uploaded with nix store copy-log', async () => {
      const closure = closures.get('zstd')!;
      await run('nix', ['store', 'copy-log', '--to', cache, closure.topDrv], env);
      const log = await run('nix', ['log', '--store', cache, closure.top], env);
      assert.match(log, /building top zstd-/);
    });

    test('NAR listings uploaded with write-nar-listing serve nix store ls', async () => {
      const closure = await buildClosure(env, work.path, `listing-${randomBytes(4).toString('hex')}`);
      await run(
        'nix',
        ['copy', '--to', `${cache}?compression=zstd&write-nar-listing=true&secret-key=${secretKey}`, closure.top],
        env,
      );
      const hashPart = closure.top.slice('/nix/store/'.length, '/nix/store/'.length + 32);
      const listing = (await (await fetch(`${cache}/${hashPart}.ls`)).json()) as {
        version: number;
        root: { type: string; entries: Record<string, unknown> };
      };
      assert.equal(listing.version, 1);
      assert.deepEqual(Object.keys(listing.root.entries).sort(), ['bin', 'dep', 'self']);
      const ls = await run('nix', ['store', 'ls', '--store', cache, '-R', closure.top], env);
      assert.match(ls, /bin\/tool/);
    });

    test('a second push of the same closure uploads nothing', async () => {
      const closure = closures.get('xz')!;
      const before = topology.writer.requests().length;
      await run(
        'nix',
        ['copy', '--to', `${cache}?compression=xz&secret-key=${secretKey}`, closure.top, closure.added],
        env,
      );
      const puts = topology.writer
        .requests()
        .slice(before)
        .filter((line) => line.startsWith('PUT '));
      assert.deepEqual(puts, []);
    });

    test('stats count each distinct chunk once', async () => {
      const stats = JSON.parse(await topology.narwhal(['stats', '--json'])) as Record<string, number>;
      // Three paths per compression, plus the closure of the listing test (which shares its binary).
      assert.equal(stats.paths, COMPRESSIONS.length * 3 + 2);
      assert.equal(stats.nars, COMPRESSIONS.length * 3 + 2);
      // Seven closures each carry the same 3 MB binary: its chunks are stored once.
      assert.ok(stats.narBytes > 7 * 3_000_000, `narBytes ${stats.narBytes}`);
      assert.ok(stats.chunkBytes < 2 * 3_400_000, `chunkBytes ${stats.chunkBytes}`);
      assert.ok(stats.storedBytes < stats.chunkBytes);
    });

    test('after narwhal recompress beside the running servers, a fresh machine substitutes everything', async () => {
      const before = JSON.parse(await topology.narwhal(['stats', '--json'])) as Record<string, number>;
      const report = JSON.parse(
        await topology.narwhal(['recompress', '--level', '12', '--deltas', '--json']),
      ) as Record<string, number>;
      // Every chunk is either recompressed or, first, stored as a delta of a newer similar one.
      assert.equal(report.chunks + report.deltas, before.chunks);
      assert.ok(report.rewritten > 0);
      const after = JSON.parse(await topology.narwhal(['stats', '--json'])) as Record<string, number>;
      assert.equal(after.storedBytes, before.storedBytes - (report.bytesBefore - report.bytesAfter));
      const clientEnv = { ...env, XDG_CACHE_HOME: join(work.path, 'cache-after-recompress') };
      const store = join(work.path, 'store-after-recompress');
      const paths = [...closures.values()].flatMap((closure) => [closure.top, closure.added]);
      // Served narinfos are cached for up to 5 s; their FileSize may lag, their NARs may not.
      await copyFrom(cache, store, paths, publicKey, clientEnv);
      const verify = await run(
        'nix',
        ['store', 'verify', '--store', store, '--trusted-public-keys', publicKey, '-r', ...paths],
        clientEnv,
      );
      assert.equal(verify.trim(), '');
      const checked = JSON.parse(await topology.narwhal(['verify', '--json'])) as {
        chunks: Record<string, number>;
        nars: Record<string, number>;
      };
      assert.deepEqual([checked.chunks.corrupt, checked.chunks.missing, checked.nars.damaged], [0, 0, 0]);
    });
  });
