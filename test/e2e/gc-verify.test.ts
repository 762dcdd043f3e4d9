import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { CLOCK_MARGIN_MS } from '../../src/maintenance/gc.ts';
import { decodeCaibx } from '../../src/storage/caibx.ts';
import { chunkFrame } from '../helpers/pack-store-contents.ts';
import {
  REPO,
  buildClosure,
  narwhal,
  nixEnv,
  run,
  startServer,
  tempDir,
  writeNetrc,
  type RunningServer,
  type TestClosure,
} from './harness.ts';

const execFileAsync = promisify(execFile);

/** Runs the real `narwhal` command and returns its exit status with its output (it may fail). */
async function narwhalStatus(args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await execFileAsync(process.execPath, [join(REPO, 'bin/narwhal.js'), ...args]);
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '' };
  }
}

interface PathJson {
  storePath: string;
  narHash: string;
  pinned: boolean;
  damaged: boolean;
}

describe('verify, repair and GC with the real narwhal command and Nix 2.8', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;
  let closure: TestClosure;
  let pushes = 0;

  const data = (): string[] => ['--data-dir', server.dataDir];
  const paths = async () => JSON.parse(await narwhal(['path', 'list', 'main', '--json', ...data()])) as PathJson[];
  const stats = async () => JSON.parse(await narwhal(['stats', '--json', ...data()])) as Record<string, number>;
  const narinfoStatus = async (storePath: string) =>
    (await fetch(`${server.url}/main/${storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`))
      .status;
  // A fresh Nix cache dir per push: the pushing Nix would otherwise trust the narinfos it remembers.
  const push = (...storePaths: string[]) =>
    run('nix', ['copy', '--to', `${server.url}/main?compression=zstd`, ...storePaths], {
      ...env,
      XDG_CACHE_HOME: join(work.path, `xdg-${pushes++}`),
    });

  before(async () => {
    work = await tempDir('gc-verify');
    env = nixEnv(work.path);
    server = await startServer(join(work.path, 'data'), ['--gc-interval', '0']);
    const token = JSON.parse(
      await narwhal(['token', 'create', ...data(), '--cache', 'main', '--perm', 'push', '--json']),
    ) as { secret: string };
    await writeNetrc(work.path, token.secret);
    closure = await buildClosure(env, work.path, `gc-${randomBytes(4).toString('hex')}`);
    await push(closure.top, closure.added);
  });

  after(async () => {
    await server?.stop();
    await work?.remove();
  });

  test('verify passes, then finds a corrupted chunk, repairs, and a second nix copy heals the NAR', async () => {
    const clean = await narwhalStatus(['verify', '--json', ...data()]);
    assert.equal(clean.code, 0, clean.stdout);
    assert.deepEqual(JSON.parse(clean.stdout).nars, { ok: 3, damaged: 0 });

    const top = (await paths()).find((p) => p.storePath === closure.top)!;
    const index = decodeCaibx(
      new Uint8Array(
        await (await fetch(`${server.url}/main/nar/${top.narHash.slice('sha256:'.length)}.caibx`)).arrayBuffer(),
      ),
    );
    const victim = chunkFrame(join(server.dataDir, 'chunks'), index.chunks[2].id);
    const file = await open(victim.path, 'r+');
    await file.write(Buffer.from('bit rot!'), 0, 8, victim.offset + Math.min(100, victim.length - 8));
    await file.close();

    // Repair spares a chunk written within the clock margin, taking it for a copy a re-push just
    // wrote (CLOCK_MARGIN_MS); on a fast machine the push in before() is not that old yet.
    await new Promise((resolve) => setTimeout(resolve, CLOCK_MARGIN_MS + 100));
    const found = await narwhalStatus(['verify', '--repair', '--json', ...data()]);
    assert.equal(found.code, 1);
    const report = JSON.parse(found.stdout) as {
      chunks: { corrupt: number };
      nars: { damaged: number };
      repaired: number;
    };
    assert.equal(report.chunks.corrupt, 1);
    assert.ok(report.nars.damaged >= 1);
    assert.equal(report.repaired, 1);
    assert.equal(await narinfoStatus(closure.top), 404);
    assert.ok((await paths()).find((p) => p.storePath === closure.top)!.damaged);

    await push(closure.top);
    assert.equal(await narinfoStatus(closure.top), 200);
    const healed = await narwhalStatus(['verify', '--json', ...data()]);
    assert.equal(healed.code, 0, healed.stdout);

    // A fresh client substitutes the healed closure.
    const publicKey = (
      JSON.parse(await narwhal(['cache', 'info', 'main', '--json', ...data()])) as { publicKey: string }
    ).publicKey;
    await run(
      'nix',
      [
        'copy',
        '--from',
        `${server.url}/main`,
        '--to',
        join(work.path, 'client-store'),
        '--option',
        'trusted-public-keys',
        publicKey,
        closure.top,
      ],
      {
        ...env,
        XDG_CACHE_HOME: join(work.path, 'xdg-client'),
      },
    );
  });

  test('path delete, pin, retention and gc: pinned closures stay, the rest goes, and stats end at zero', async () => {
    // GC spares what uploads may rely on while the server has one running; it goes idle a second after the last.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await assert.rejects(narwhal(['path', 'delete', 'main', closure.dep, ...data()]), /still referred to/);
    await narwhal(['path', 'delete', 'main', closure.added, ...data()]);
    const gc = JSON.parse(await narwhal(['gc', '--grace', '0', '--json', ...data()])) as {
      nars: number;
      chunks: number;
    };
    assert.equal(gc.nars, 1);
    assert.ok(gc.chunks >= 1);
    assert.equal((await stats()).paths, 2);

    await narwhal(['cache', 'configure', 'main', '--retention', '1s', ...data()]);
    await narwhal(['path', 'pin', 'main', closure.top, ...data()]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(
      (JSON.parse(await narwhal(['gc', '--grace', '0', '--json', ...data()])) as { paths: number }).paths,
      0,
    );
    assert.deepEqual((await paths()).map((p) => p.pinned).sort(), [false, true]);

    await narwhal(['path', 'unpin', 'main', closure.top, ...data()]);
    assert.equal(
      (JSON.parse(await narwhal(['gc', '--grace', '0', '--json', ...data()])) as { paths: number }).paths,
      2,
    );
    assert.deepEqual(await stats(), { paths: 0, nars: 0, narBytes: 0, chunks: 0, chunkBytes: 0, storedBytes: 0 });
    assert.equal(await narinfoStatus(closure.top), 404);
  });
});
