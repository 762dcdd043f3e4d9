import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseSync } from 'node:sqlite';
import { buildClosure, narwhal, nixEnv, run, tempDir, writeNetrc, copyFrom } from '../e2e/harness.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { packStoreContents } from '../helpers/pack-store-contents.ts';
import { normalizeSha256 } from '../../src/nix/hash.ts';
import { KillableServer, freePort } from './killable-server.ts';
import { pushPath, type PushOutcome } from './push-client.ts';
import { checkServedPath, forEachLimited } from './served-path.ts';
import {
  baseNameOf,
  hashPartFor,
  loadBinarySource,
  seededRandom,
  syntheticPath,
  type SyntheticPath,
} from './synthetic-paths.ts';

/** Kills per run; NARWHAL_CRASH_KILLS overrides (CI keeps the default). */
const KILLS = Number(process.env.NARWHAL_CRASH_KILLS ?? 50);
const CLIENTS = Number(process.env.NARWHAL_CRASH_CLIENTS ?? 4);
/** Attempts per path while the server is being killed; what is still missing is pushed again at the end. */
const ATTEMPTS = 3;

/** One pushing client: its own sequence of paths, each referring to shared bases and to its predecessor. */
class CrashClient {
  readonly index: number;
  readonly attempted: SyntheticPath[] = [];
  readonly acked = new Set<string>();
  readonly counts: Record<PushOutcome['kind'], number> = {
    acked: 0,
    present: 0,
    'missing-dep': 0,
    network: 0,
    unexpected: 0,
  };
  readonly failures: string[] = [];
  readonly #make: (client: number, i: number) => SyntheticPath;

  constructor(index: number, make: (client: number, i: number) => SyntheticPath) {
    this.index = index;
    this.#make = make;
  }

  /** Pushes paths until `stopped()`; a path that keeps failing is left for the final re-run. */
  async run(server: KillableServer, token: string, ackedAnywhere: Set<string>, stopped: () => boolean): Promise<void> {
    for (let i = 0; !stopped(); i++) {
      const path = this.#make(this.index, i);
      this.attempted.push(path);
      for (let attempt = 0; attempt < ATTEMPTS && !stopped(); attempt++) {
        const incarnation = server.incarnation;
        const outcome = await pushPath(path, { cacheUrl: `${server.url}/main`, token });
        this.counts[outcome.kind]++;
        if (outcome.kind === 'acked') {
          this.acked.add(path.hashPart);
          ackedAnywhere.add(path.hashPart);
          break;
        }
        if (outcome.kind === 'present') break;
        if (outcome.kind === 'missing-dep') {
          // Legitimate only while one of its references was never acknowledged.
          const unacked = path.references.filter(
            (ref) => !ackedAnywhere.has(ref.slice(0, 32)) && ref !== baseNameOf(path),
          );
          if (unacked.length === 0)
            this.failures.push(`${path.storePath}: ${outcome.detail} although every reference was acknowledged`);
          break;
        }
        if (outcome.kind === 'unexpected') {
          this.failures.push(`${path.storePath}: ${outcome.detail}`);
          break;
        }
        // A broken connection is expected only from an incarnation we killed.
        await server.upAfter(incarnation);
        if (!server.wasKilled(incarnation))
          this.failures.push(`${path.storePath}: ${outcome.detail} from a server nobody killed`);
      }
    }
  }
}

describe('crash safety: SIGKILL at random moments during concurrent pushes', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: KillableServer;
  let token: string;
  const seed = randomBytes(6).toString('hex');

  before(async () => {
    work = await tempDir('crash');
    server = new KillableServer(join(work.path, 'data'), await freePort());
    token = (
      JSON.parse(
        await narwhal(['token', 'create', '--data-dir', server.dataDir, '--cache', 'main', '--perm', 'push', '--json']),
      ) as { secret: string }
    ).secret;
    server.start();
    await server.whenUp();
  });

  after(async () => {
    await server?.stop();
    if (process.env.NARWHAL_KEEP_DATA) console.error(`kept ${work?.path}`);
    else await work?.remove();
  });

  test(`${KILLS} kills during ${CLIENTS} concurrent pushing clients; acknowledged pushes survive, nothing half-committed shows, re-runs complete`, async (t) => {
    const began = performance.now();
    const source = loadBinarySource();
    const bases = [0, 1].map((b) => syntheticPath(source, { seed, name: `crash-base-${b}` }));
    for (const base of bases)
      assert.equal((await pushPath(base, { cacheUrl: `${server.url}/main`, token })).kind, 'acked');
    const ackedAnywhere = new Set(bases.map((b) => b.hashPart));
    const make = (client: number, i: number): SyntheticPath => {
      const name = `crash-c${client}-${i}`;
      const references = [baseNameOf(bases[i % 2])];
      // Every path but each third one depends on its predecessor, as in a real closure.
      if (i % 3 !== 0) references.push(`${hashPartFor(seed, `crash-c${client}-${i - 1}`)}-crash-c${client}-${i - 1}`);
      return syntheticPath(source, {
        seed,
        name,
        references,
        selfReference: i % 4 === 0,
        sharedContent: i % 7 === 3 ? i % 3 : undefined,
      });
    };
    const clients = Array.from({ length: CLIENTS }, (_, c) => new CrashClient(c, make));
    let stopping = false;
    const pushing = clients.map((client) => client.run(server, token, ackedAnywhere, () => stopping));

    const random = seededRandom(seed);
    let ackedBefore = ackedAnywhere.size;
    let killsWithoutAck = 0;
    for (let kill = 1; kill <= KILLS; kill++) {
      await server.whenUp();
      // On a loaded machine a push may take longer than the kills leave it: after three kills
      // without an acknowledgement, the next waits for one (a while at most) before its delay.
      if (killsWithoutAck >= 3) await until(() => ackedAnywhere.size > ackedBefore, 10_000);
      await sleep(20 + Math.floor(random() * 380));
      killsWithoutAck = ackedAnywhere.size > ackedBefore ? 0 : killsWithoutAck + 1;
      ackedBefore = ackedAnywhere.size;
      if (kill === KILLS) stopping = true; // clients stop once the last kill has cut them off
      await server.kill();
      server.start();
    }
    await server.whenUp();
    await Promise.all(pushing);
    const pushSeconds = (performance.now() - began) / 1000;

    const failures = clients.flatMap((c) => c.failures);
    assert.deepEqual(
      failures,
      [],
      'clients saw answers other than success, a missing (unacknowledged) reference, or a cut connection',
    );
    assert.deepEqual(server.unexpectedExits, []);

    // Right after the last kill: every acknowledged narinfo is served with the right NAR, and
    // whatever else is visible is exactly what was sent.
    const attempted = [...bases, ...clients.flatMap((c) => c.attempted)];
    let visibleUnacked = 0;
    await forEachLimited(attempted, 8, async (path) => {
      const state = await checkServedPath(`${server.url}/main`, path);
      if (ackedAnywhere.has(path.hashPart))
        assert.equal(state, 'served', `${path.storePath} was acknowledged but is not served`);
      else if (state === 'served') visibleUnacked++;
    });
    const committedNars = await countCommittedNars(server, token, attempted);
    const verifiedAfterKill = await verifyStore(server.dataDir);

    // Push again what was not acknowledged, as a user re-running `nix copy` would.
    const rerun = clients.map((client) => client.attempted.filter((p) => !client.acked.has(p.hashPart)));
    await Promise.all(
      rerun.map(async (paths) => {
        for (const path of paths) {
          const outcome = await pushPath(path, { cacheUrl: `${server.url}/main`, token });
          assert.ok(
            outcome.kind === 'acked' || outcome.kind === 'present',
            `re-run of ${path.storePath}: ${JSON.stringify(outcome)}`,
          );
        }
      }),
    );
    const rerunPaths = new Set(rerun.flat().map((p) => p.hashPart));
    await forEachLimited(attempted, 8, async (path) => {
      const state = await checkServedPath(`${server.url}/main`, path, { bytes: rerunPaths.has(path.hashPart) });
      assert.equal(state, 'served', `${path.storePath} after the re-run`);
    });

    const distinctNars = new Set(attempted.map((p) => p.narHash)).size;
    const stats = JSON.parse(await narwhal(['stats', '--data-dir', server.dataDir, '--json'])) as Record<
      string,
      number
    >;
    assert.equal(stats.paths, attempted.length);
    assert.equal(stats.nars, distinctNars);
    const packs = await packStoreContents(join(server.dataDir, 'chunks'));
    assert.deepEqual(packs.misplaced, [], 'index entries that do not point at their frame');
    assert.ok(packs.chunks >= stats.chunks, `${packs.chunks} indexed chunks for ${stats.chunks} chunks`);
    const verifiedAfterRerun = await verifyStore(server.dataDir);
    await server.stop();
    const db = new DatabaseSync(join(server.dataDir, 'narwhal.sqlite'), { readOnly: true });
    try {
      assert.deepEqual(
        db
          .prepare('PRAGMA integrity_check')
          .all()
          .map((row) => row.integrity_check),
        ['ok'],
      );
    } finally {
      db.close();
    }
    server.start();
    await server.whenUp();

    const totals = clients.reduce(
      (sum, c) => {
        for (const [k, v] of Object.entries(c.counts)) sum[k as PushOutcome['kind']] += v;
        return sum;
      },
      { acked: 0, present: 0, 'missing-dep': 0, network: 0, unexpected: 0 },
    );
    const startup = [...server.startupMs].sort((a, b) => a - b);
    const figures = {
      kills: KILLS,
      clients: CLIENTS,
      pathsAttempted: attempted.length,
      pushesAcknowledged: ackedAnywhere.size,
      attemptOutcomes: totals,
      visibleButUnacknowledged: visibleUnacked,
      narsCommittedAfterLastKill: committedNars,
      rerunPaths: rerunPaths.size,
      pushPhaseSeconds: Math.round(pushSeconds),
      totalSeconds: Math.round((performance.now() - began) / 1000),
      serverStartMsMedian: Math.round(startup[startup.length >> 1]),
      serverStartMsMax: Math.round(startup[startup.length - 1]),
      stats,
      indexedChunks: packs.chunks,
      orphanChunks: packs.chunks - stats.chunks,
      unsealedPacks: packs.unindexedPacks.length,
      verifyAfterLastKill: verifiedAfterKill,
      verifyAfterRerun: verifiedAfterRerun,
    };
    t.diagnostic(`crash figures ${JSON.stringify(figures)}`);
    // Not vacuous: pushes did get through between kills, and kills did cut clients off.
    assert.ok(
      ackedAnywhere.size - bases.length >= KILLS / 10,
      `only ${ackedAnywhere.size - bases.length} pushes were acknowledged in ${KILLS} kills`,
    );
    assert.ok(totals.network > 0, 'no kill ever cut off a client');
  });

  test('a real nix copy cut off by a kill, then run again, completes and substitutes', async () => {
    const home = join(work.path, 'nix-home');
    const env = nixEnv(home);
    await run('mkdir', ['-p', home]);
    await writeNetrc(home, token);
    const closure = await buildClosure(env, home, `crash-${seed}`);
    const to = `${server.url}/main?compression=xz`;

    await server.whenUp();
    // Kill as soon as the first NAR upload finished: the rest of the closure is still to come.
    const firstNar = server.nextLine(/^PUT \/main\/nar\/\S+ 204( |$)/);
    const copy = run('nix', ['copy', '--to', to, closure.top, closure.added], env).then(
      () => 'completed',
      (err: Error) => err.message,
    );
    const first = await Promise.race([firstNar.then(() => 'nar'), copy.then(() => 'copy')]);
    assert.equal(first, 'nar', 'nix copy ended before any NAR upload finished');
    await server.kill();
    const cutOff = await copy;
    assert.notEqual(cutOff, 'completed', 'nix copy finished although the server was killed during it');
    server.start();
    await server.whenUp();

    // Whatever of the closure is visible now is whole.
    const paths = (await run('nix-store', ['-qR', closure.top, closure.added], env)).trim().split('\n');
    for (const storePath of paths) {
      const hashPart = storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
      const nar = new Uint8Array(await runBytes('nix-store', ['--dump', storePath], env));
      const info = JSON.parse(await run('nix', ['path-info', '--json', storePath], env)) as {
        narHash: string;
        references: string[];
      }[];
      await checkServedPath(`${server.url}/main`, {
        storePath,
        hashPart,
        nar,
        narHash: normalizeSha256(info[0].narHash),
        references: info[0].references.map((r) => r.slice('/nix/store/'.length)),
      });
    }

    await run('nix', ['copy', '--to', to, closure.top, closure.added], env);
    const publicKey = (
      JSON.parse(await narwhal(['cache', 'info', 'main', '--data-dir', server.dataDir, '--json'])) as {
        publicKey: string;
      }
    ).publicKey;
    const store = join(work.path, 'fresh-store');
    const freshEnv = { ...env, XDG_CACHE_HOME: join(home, 'fresh-cache') };
    await copyFrom(`${server.url}/main`, store, [closure.top, closure.added], publicKey, freshEnv);
    assertSameBytes(await readFile(join(store, closure.top, 'bin/tool')), await readFile('/usr/bin/nix'));
    assert.equal(await readFile(join(store, closure.top, 'dep'), 'utf8'), `${closure.dep}\n`);
    assert.equal(
      (
        await run(
          'nix',
          ['store', 'verify', '--store', store, '--trusted-public-keys', publicKey, '-r', closure.top, closure.added],
          freshEnv,
        )
      ).trim(),
      '',
    );
  });
});

/** Resolves once `condition()` holds, or after `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadline) await sleep(10);
}

/** NARs the server says it holds (HEAD on the upload name, which a pusher may always do). */
async function countCommittedNars(server: KillableServer, token: string, paths: SyntheticPath[]): Promise<number> {
  const names = [...new Set(paths.map((p) => p.uploadName))];
  let committed = 0;
  await forEachLimited(names, 8, async (name) => {
    const response = await fetch(`${server.url}/main/${name}`, {
      method: 'HEAD',
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.ok(response.status === 200 || response.status === 404, `HEAD ${name}: ${response.status}`);
    if (response.status === 200) committed++;
  });
  return committed;
}

/**
 * `narwhal verify --json` (reads every chunk, checks every NAR), when this checkout has the
 * command: it exits non-zero while damage remains, which fails the test. Its report, else null.
 */
async function verifyStore(dataDir: string): Promise<unknown> {
  if (!/^\s+verify\s/m.test(await narwhal(['--help']))) return null;
  return JSON.parse(await narwhal(['verify', '--data-dir', dataDir, '--json']));
}

async function runBytes(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}
