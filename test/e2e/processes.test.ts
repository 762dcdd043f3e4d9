/**
 * `narwhal serve --processes 2` on a fresh data dir, driven by the real Nix 2.8: both processes
 * answer on the one port, a push and a substitution work across them, a crashed process is
 * replaced, SIGTERM stops them all, and a port already taken stops the start with an error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertSameBytes } from '../helpers/bytes.ts';
import {
  buildClosure,
  narwhal,
  nixEnv,
  REPO,
  run,
  startServer,
  tempDir,
  writeNetrc,
  type RunningServer,
  copyFrom,
} from './harness.ts';

/** The processes `pid` started, read from /proc. */
async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text
    .split(' ')
    .filter((s) => s !== '')
    .map(Number);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pids holding the server side of established connections on `port` (ss names them). */
async function pidsServing(port: string): Promise<Set<number>> {
  const out = await run('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`]);
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

describe('serve --processes 2', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    work = await tempDir('processes');
    env = nixEnv(work.path);
    // Fresh: both processes create the database and the chunk store at once.
    server = await startServer(join(work.path, 'data'), ['--processes', '2']);
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('two processes serve one port, and announce it once', async () => {
    assert.match(server.output(), /with 2 processes/);
    assert.equal(server.output().match(/serving /g)?.length, 1);
    const children = await childrenOf(server.pid);
    assert.equal(children.length, 2);
    // Connections are dealt out in turn: four held open reach both processes.
    const port = new URL(server.url).port;
    const sockets = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const socket = connect(Number(port), '127.0.0.1', () => resolve(socket));
            socket.once('error', reject);
          }),
      ),
    );
    try {
      const serving = await waitFor('both processes to hold connections', async () => {
        const pids = await pidsServing(port);
        return children.every((pid) => pids.has(pid)) ? pids : undefined;
      });
      assert.ok(children.every((pid) => serving.has(pid)));
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    // Both open the same stores, so every answer is the same.
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        fetch(`${server.url}/main/nix-cache-info`, { headers: { connection: 'close' } }).then((r) => r.text()),
      ),
    );
    assert.equal(new Set(answers).size, 1);
    assert.match(answers[0], /^StoreDir: \/nix\/store$/m);
  });

  test('nix copy pushes through them and substitutes into a fresh store', async () => {
    const token = JSON.parse(
      await narwhal(['token', 'create', '--data-dir', server.dataDir, '--cache', 'main', '--perm', 'push', '--json']),
    ) as { secret: string };
    await writeNetrc(work.path, token.secret);
    const { publicKey } = JSON.parse(
      await narwhal(['cache', 'info', 'main', '--data-dir', server.dataDir, '--json']),
    ) as { publicKey: string };
    const closure = await buildClosure(env, work.path, `processes-${process.pid}`);
    await run('nix', ['copy', '--to', `${server.url}/main`, closure.top, closure.added], env);
    const dest = join(work.path, 'fresh-store');
    await copyFrom(`${server.url}/main`, dest, [closure.top, closure.added], publicKey, {
      ...env,
      XDG_CACHE_HOME: join(work.path, 'xdg-fresh'),
    });
    assertSameBytes(await readFile(join(dest, closure.top, 'bin/tool')), await readFile(join(closure.top, 'bin/tool')));
    // Every request went to one of the two, and none failed.
    assert.deepEqual(
      server.requests().filter((line) => / 5\d\d$/.test(line)),
      [],
    );
  });

  test('a process that crashes is replaced, and the port keeps answering', async () => {
    const [victim, survivor] = await childrenOf(server.pid);
    process.kill(victim, 'SIGKILL');
    const now = await waitFor('a replacement process', async () => {
      const children = await childrenOf(server.pid);
      return children.length === 2 && !children.includes(victim) ? children : undefined;
    });
    assert.ok(now.includes(survivor));
    assert.match(server.output(), new RegExp(`server process ${victim} exited with signal SIGKILL; starting another`));
    const replacement = now.find((pid) => pid !== survivor)!;
    await waitFor('the replacement to listen', async () =>
      server.output().includes(`server process ${replacement} took over from ${victim}`) ? true : undefined,
    );
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${server.url}/main/nix-cache-info`, { headers: { connection: 'close' } });
      assert.equal(response.status, 200);
      await response.text();
    }
  });

  test('SIGTERM stops every process, with status 0', async () => {
    const children = await childrenOf(server.pid);
    await server.stop();
    for (const pid of children) assert.throws(() => process.kill(pid, 0), /ESRCH/);
    assert.equal(server.output().match(/SIGTERM, shutting down/g)?.length, 2);
  });

  test('a port already taken stops the start with an error, leaving nothing running', async () => {
    const holder = await startServer(join(work.path, 'holder'));
    try {
      const port = new URL(holder.url).port;
      const child = spawn(
        process.execPath,
        [
          join(REPO, 'bin/narwhal.js'),
          'serve',
          '--data-dir',
          join(work.path, 'second'),
          '--listen',
          `127.0.0.1:${port}`,
          '--processes',
          '2',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      assert.notEqual(code, 0);
      assert.match(stderr, /EADDRINUSE/);
      assert.match(stderr, /exited with status \d+ before it listened; stopping/);
      assert.equal((await childrenOf(child.pid!)).length, 0);
    } finally {
      await holder.stop();
    }
  });
});
