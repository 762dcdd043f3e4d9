/**
 * `narwhal push` over a connection that fails, with real Nix and a real server behind a TCP relay
 * that cuts connections: an upload cut half-way is sent again and the push completes; a server
 * that cannot be reached makes the push fail with one line saying what it was doing, not an
 * uncaught exception with a stack trace.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildClosure, nixEnv, REPO, tempDir, type TestClosure } from './harness.ts';
import { startEmbedded, type Topology } from './topology.ts';

const execFileAsync = promisify(execFile);

/**
 * A relay to `target` that cuts connections: with `cutUploads`, the first that many connections
 * whose request bytes pass 64 KB (a NAR's upload) are closed there; with `cutAll`, every
 * connection is closed as its first request arrives.
 */
async function cuttingRelay(target: URL, options: { cutUploads?: number; cutAll?: boolean }) {
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let sent = 0;
    const cut = (): void => {
      cuts++;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (data: Buffer) => {
      if (options.cutAll) return cut();
      sent += data.length;
      if (sent > 64 * 1024 && cuts < (options.cutUploads ?? 0)) return cut();
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => client.write(data));
    for (const socket of [client, upstream]) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cuts: () => cuts,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('narwhal push over failing connections', () => {
  let work: { path: string; remove(): Promise<void> };
  let topology: Topology;
  let env: NodeJS.ProcessEnv;
  let token: string;
  let closure: TestClosure;

  const push = (cacheUrl: string, paths: string[]) =>
    execFileAsync(process.execPath, [join(REPO, 'bin/narwhal.js'), 'push', '--cache', cacheUrl, '--json', ...paths], {
      env: { ...env, NARWHAL_TOKEN: token },
    });

  before(async () => {
    work = await tempDir('e2e-push-connection');
    env = nixEnv(work.path);
    topology = await startEmbedded(work.path);
    token = (
      JSON.parse(await topology.narwhal(['token', 'create', '--cache', 'main', '--perm', 'push', '--json'])) as {
        secret: string;
      }
    ).secret;
    closure = await buildClosure(env, work.path, randomBytes(8).toString('hex'));
  });

  after(async () => {
    try {
      await topology?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('a server that cannot be reached fails the push with one line naming what it was doing', async () => {
    const relay = await cuttingRelay(new URL(topology.url), { cutAll: true });
    try {
      const failed = await push(`${relay.url}/main`, [closure.top]).then(
        () => assert.fail('the push succeeded without a server'),
        (err: { code?: number; stderr?: string }) => err,
      );
      assert.equal(failed.code, 2);
      assert.match(failed.stderr ?? '', /^narwhal push: .*the connection to the server failed/m);
      assert.doesNotMatch(failed.stderr ?? '', /^\s+at /m, 'no stack trace');
      assert.ok(relay.cuts() > 0);
    } finally {
      await relay.close();
    }
    const { stdout } = await push(`${topology.url}/main`, [closure.dep]);
    assert.equal((JSON.parse(stdout) as { cached: number }).cached, 0, 'nothing was stored by the failed push');
  });

  test('uploads cut half-way are sent again and the push completes', async () => {
    const relay = await cuttingRelay(new URL(topology.url), { cutUploads: 2 });
    try {
      const { stdout } = await push(`${relay.url}/main`, [closure.top, closure.added]);
      const result = JSON.parse(stdout) as { paths: number; cached: number; pushed: number };
      assert.equal(result.pushed + result.cached, result.paths);
      assert.equal(relay.cuts(), 2);
    } finally {
      await relay.close();
    }
    const { stdout } = await push(`${topology.url}/main`, [closure.top, closure.added]);
    const again = JSON.parse(stdout) as { paths: number; cached: number };
    assert.equal(again.cached, again.paths, 'every path of the closure is in the cache');
  });
});
