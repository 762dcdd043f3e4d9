import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  buildClosure,
  narwhal,
  nixEnv,
  run,
  startServer,
  tempDir,
  writeNetrc,
  type RunningServer,
  type TestClosure,
} from '../e2e/harness.ts';
import { packStoreContents } from '../helpers/pack-store-contents.ts';
import { assertSameBytes } from '../helpers/bytes.ts';

const PUSHERS = ['xz', 'zstd', 'none', 'bzip2'] as const;
const SUBSTITUTERS = 3;
const WRK_SECONDS = 10;
const IDLE_WRK_SECONDS = 3;

interface WrkFigures {
  requests: number;
  requestsPerSecond: number;
  latencyAvg: string;
  latencyP50: string;
  latencyP99: string;
  latencyMax: string;
  non2xx: number;
  socketErrors: string | null;
}

/**
 * Several real Nix clients at once: pushers upload overlapping closures (each closure is pushed by
 * two clients with different compressions, so the same NARs and narinfos arrive concurrently)
 * while others substitute and wrk hammers narinfo lookups.
 */
describe('concurrency and load: parallel nix copy clients and wrk', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;
  let token: string;
  let publicKey: string;
  const closures: TestClosure[] = [];

  /** A client machine of its own: HOME, netrc and Nix's client-side cache. */
  async function clientEnv(name: string): Promise<NodeJS.ProcessEnv> {
    const home = join(work.path, name);
    await mkdir(home, { recursive: true });
    await writeNetrc(home, token);
    return nixEnv(home);
  }

  before(async () => {
    work = await tempDir('load');
    server = await startServer(join(work.path, 'data'));
    token = (
      JSON.parse(
        await narwhal(['token', 'create', '--data-dir', server.dataDir, '--cache', 'main', '--perm', 'push', '--json']),
      ) as { secret: string }
    ).secret;
    publicKey = (
      JSON.parse(await narwhal(['cache', 'info', 'main', '--data-dir', server.dataDir, '--json'])) as {
        publicKey: string;
      }
    ).publicKey;
    const builder = await clientEnv('builder');
    const nonce = randomBytes(4).toString('hex');
    for (let i = 0; i <= PUSHERS.length; i++)
      closures.push(await buildClosure(builder, join(work.path, 'builder'), `load-${nonce}-${i}`));
  });

  after(async () => {
    await server?.stop();
    await work?.remove();
  });

  test(`${PUSHERS.length} pushers, ${SUBSTITUTERS} substituters and wrk at once: no errors, consistent store`, async (t) => {
    const [first, ...rest] = closures;
    await run(
      'nix',
      ['copy', '--to', `${server.url}/main?compression=zstd`, first.top, first.added],
      await clientEnv('first-pusher'),
    );
    const keys = [first.top, first.dep, first.added].map(
      (p) => `/main/${p.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`,
    );

    // The same lookups on an otherwise idle server, for comparison.
    const idle = await runWrk(join(work.path, 'narinfos.lua'), server.url, keys, IDLE_WRK_SECONDS);
    assert.equal(idle.non2xx, 0);
    t.diagnostic(`wrk narinfo lookups, idle server ${JSON.stringify(idle)}`);

    const substitute = async (name: string, paths: string[]): Promise<string> => {
      const env = await clientEnv(name);
      const store = join(work.path, `store-${name}`);
      await run(
        'nix',
        ['copy', '--from', `${server.url}/main`, '--to', store, '--option', 'trusted-public-keys', publicKey, ...paths],
        env,
      );
      return store;
    };
    const began = performance.now();
    const pushSeconds: number[] = [];
    const pushes = PUSHERS.map(async (compression, k) => {
      const env = await clientEnv(`pusher-${k}`);
      const mine = [rest[k], rest[(k + 1) % rest.length]];
      await run(
        'nix',
        ['copy', '--to', `${server.url}/main?compression=${compression}`, ...mine.flatMap((c) => [c.top, c.added])],
        env,
      );
      pushSeconds.push(Math.round((performance.now() - began) / 100) / 10);
    });
    const during = Array.from({ length: SUBSTITUTERS }, (_, k) => substitute(`during-${k}`, [first.top, first.added]));
    const wrk = runWrk(join(work.path, 'narinfos.lua'), server.url, keys);
    // Once every push is in, more clients substitute all of it, still under wrk.
    const clients = (async () => {
      const [duringStores] = await Promise.all([Promise.all(during), Promise.all(pushes)]);
      const after = Array.from({ length: SUBSTITUTERS }, (_, k) =>
        substitute(
          `after-${k}`,
          rest.flatMap((c) => [c.top, c.added]),
        ),
      );
      const afterStores = await Promise.all(after);
      return { duringStores, afterStores, seconds: Math.round((performance.now() - began) / 100) / 10 };
    })();
    const [wrkFigures, { duringStores, afterStores, seconds }] = await Promise.all([wrk, clients]);

    t.diagnostic(
      `wrk narinfo lookups under load ${JSON.stringify(wrkFigures)}; pushers finished after ${pushSeconds.join(', ')} s, all nix clients after ${seconds} s of wrk's ${WRK_SECONDS} s`,
    );
    assert.ok(wrkFigures.requests > 0, 'wrk sent no request');
    assert.equal(wrkFigures.non2xx, 0, 'narinfo lookups of existing paths must all answer 200');
    assert.equal(wrkFigures.socketErrors, null, 'wrk saw socket errors');

    const tool = await readFile('/usr/bin/nix');
    for (const [stores, group] of [
      [duringStores, [first]],
      [afterStores, rest],
    ] as const) {
      for (const store of stores) {
        for (const closure of group) {
          assertSameBytes(
            await readFile(join(store, closure.top, 'bin/tool')),
            tool,
            `${store}${closure.top}/bin/tool`,
          );
          assert.equal(await readFile(join(store, closure.top, 'dep'), 'utf8'), `${closure.dep}\n`);
        }
        const verify = await run(
          'nix',
          [
            'store',
            'verify',
            '--store',
            store,
            '--trusted-public-keys',
            publicKey,
            '-r',
            ...group.flatMap((c) => [c.top, c.added]),
          ],
          nixEnv(work.path),
        );
        assert.equal(verify.trim(), '');
      }
    }

    const failed = server
      .requests()
      .filter((line) => / [5]\d\d$/.test(line) || (line.startsWith('PUT ') && !/ 20\d$/.test(line)));
    assert.deepEqual(failed, [], 'server answered errors');

    const stats = JSON.parse(await narwhal(['stats', '--data-dir', server.dataDir, '--json'])) as Record<
      string,
      number
    >;
    assert.equal(stats.paths, closures.length * 3);
    assert.equal(stats.nars, closures.length * 3);
    const packs = await packStoreContents(join(server.dataDir, 'chunks'));
    assert.deepEqual(packs.unindexedPacks, [], 'pack files left unsealed');
    assert.deepEqual(packs.misplaced, [], 'index entries that do not point at their frame');
    assert.equal(packs.chunks, stats.chunks, 'chunks in the pack index vs chunks in the database');
    assert.equal(packs.bytes, stats.storedBytes, 'bytes of indexed frames vs storedBytes');
    t.diagnostic(`load stats ${JSON.stringify({ ...stats, requestsLogged: server.requests().length })}`);
  });
});

/** wrk for `seconds`, one thread, 16 connections, GETs cycling through `paths`. */
async function runWrk(
  scriptPath: string,
  baseUrl: string,
  paths: string[],
  seconds = WRK_SECONDS,
): Promise<WrkFigures> {
  await writeFile(
    scriptPath,
    `local paths = { ${paths.map((p) => JSON.stringify(p)).join(', ')} }
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
`,
  );
  const out = await run('wrk', ['-t1', '-c16', `-d${seconds}s`, '--latency', '-s', scriptPath, `${baseUrl}/`]);
  const field = (re: RegExp): string => {
    const match = re.exec(out);
    if (!match) throw new Error(`unexpected wrk output:\n${out}`);
    return match[1];
  };
  return {
    requests: Number(field(/(\d+) requests in /)),
    requestsPerSecond: Number(field(/Requests\/sec:\s+([\d.]+)/)),
    latencyAvg: field(/^\s+Latency\s+(\S+)/m),
    latencyP50: field(/^\s+50%\s+(\S+)/m),
    latencyP99: field(/^\s+99%\s+(\S+)/m),
    latencyMax: field(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: /Socket errors: ([^\n]+)/.exec(out)?.[1] ?? null,
  };
}
