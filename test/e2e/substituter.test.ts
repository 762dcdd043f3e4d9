/**
 * `narwhal substituter` with stock Nix 2.8 and require-sigs: a machine holding the previous version
 * fetches little; a fresh machine gets everything; a corrupt chunk from the server is refused and
 * never becomes a wrong NAR; the server's answer cut off mid-NAR fails the copy, and the next one
 * succeeds. The server runs as users run it; faults come from a proxy between the two.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFile, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { VersionFigures } from '../../src/client/local-versions.ts';
import type { AssemblyFigures } from '../../src/client/nar-assembly.ts';
import {
  stopProcess,
  assertClosureInStore,
  buildClosure,
  nixEnv,
  REPO,
  run,
  tempDir,
  type TestClosure,
  copyFrom,
} from './harness.ts';
import { startEmbedded, type Topology } from './topology.ts';

/** cut-third: the third chunk request is cut off halfway (the dep's NAR, the top's first batch, then its second). */
type Fault = 'none' | 'corrupt' | 'cut-third';

/** Forwards to `target`; corrupts or cuts `chunk-frames` answers as `fault` says. */
async function faultProxy(target: string): Promise<{ url: string; fault: Fault; close(): void }> {
  let chunkRequests = 0;
  const state = { fault: 'none' as Fault };
  const server: Server = createServer(async (req, res) => {
    const body: Buffer[] = [];
    for await (const part of req) body.push(part as Buffer);
    const answer = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers: req.headers.authorization ? { Authorization: req.headers.authorization } : {},
      body: req.method === 'POST' ? Buffer.concat(body) : undefined,
    });
    const bytes = Buffer.from(await answer.arrayBuffer());
    const frames = req.url?.endsWith('/chunk-frames');
    if (frames) chunkRequests++;
    if (frames && state.fault === 'corrupt' && bytes.length > 100) bytes[bytes.length - 20] ^= 0xff;
    res.writeHead(answer.status, { 'Content-Type': answer.headers.get('content-type') ?? 'application/octet-stream' });
    if (frames && state.fault === 'cut-third' && chunkRequests === 3) {
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
      setTimeout(() => res.destroy(), 50);
      return;
    }
    res.end(bytes);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get fault() {
      return state.fault;
    },
    set fault(f: Fault) {
      state.fault = f;
      chunkRequests = 0;
    },
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe('narwhal substituter with stock Nix', () => {
  let work: { path: string; remove(): Promise<void> };
  let topology: Topology;
  let env: NodeJS.ProcessEnv;
  let publicKey: string;
  let v1: TestClosure;
  let v2: TestClosure;
  let proxy: Awaited<ReturnType<typeof faultProxy>>;
  const substituters: ChildProcess[] = [];

  /** Starts `narwhal substituter` for `cacheUrl` on a machine whose store is `store`, its cache dir `chunks-<cacheDir>`. */
  const substituter = async (cacheUrl: string, store: string, name: string, cacheDir = name) => {
    const child = spawn(
      process.execPath,
      [
        join(REPO, 'bin/narwhal.js'),
        'substituter',
        '--cache',
        cacheUrl,
        '--listen',
        '127.0.0.1:0',
        '--store',
        store,
        '--cache-dir',
        join(work.path, `chunks-${cacheDir}`),
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
    return {
      url,
      stats: async () =>
        (await (await fetch(`${url}/_narwhal/stats`)).json()) as AssemblyFigures &
          VersionFigures & { fallbacks: number },
    };
  };
  const copy = (from: string, store: string, paths: string[], name: string) =>
    copyFrom(from, store, paths, publicKey, { ...env, XDG_CACHE_HOME: join(work.path, `cache-${name}`) });
  const assertWhole = (store: string, closure: TestClosure, name: string) =>
    assertClosureInStore(store, closure, publicKey, { ...env, XDG_CACHE_HOME: join(work.path, `cache-${name}`) });

  before(async () => {
    work = await tempDir('e2e-subst');
    env = nixEnv(work.path);
    topology = await startEmbedded(work.path);
    const token = (
      JSON.parse(await topology.narwhal(['token', 'create', '--cache', 'main', '--perm', 'push', '--json'])) as {
        secret: string;
      }
    ).secret;
    publicKey = (JSON.parse(await topology.narwhal(['cache', 'info', 'main', '--json'])) as { publicKey: string })
      .publicKey;
    const nonce = randomBytes(4).toString('hex');
    v1 = await buildClosure(env, work.path, `subst-a-${nonce}`);
    v2 = await buildClosure(env, work.path, `subst-b-${nonce}`);
    await run(
      process.execPath,
      [join(REPO, 'bin/narwhal.js'), 'push', '--cache', `${topology.url}/main`, v1.top, v2.top],
      { ...env, NARWHAL_TOKEN: token },
    );
    proxy = await faultProxy(topology.url);
  });

  after(async () => {
    await Promise.all(substituters.map(stopProcess));
    proxy?.close();
    try {
      await topology?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('a machine holding the previous version fetches only what it lacks', async () => {
    const store = join(work.path, 'machine-a');
    await copy(`${topology.url}/main`, store, [v1.top], 'a-direct');
    const local = await substituter(`${topology.url}/main`, store, 'a');
    await copy(local.url, store, [v2.top], 'a');
    await assertWhole(store, v2, 'a');
    const stats = await local.stats();
    assert.ok(stats.chunksLocal > 0, 'chunks of the previous version are used');
    const narSize = Number(JSON.parse(await run('nix', ['path-info', '--json', v2.top], env))[0].narSize);
    assert.ok(stats.bytesFromServer < narSize / 4, `${stats.bytesFromServer} B fetched for ${narSize} B of NAR`);
  });

  test('the chunk lists of local versions are kept: another substituter on that cache dir uses them', async () => {
    const first = join(work.path, 'machine-e');
    await copy(`${topology.url}/main`, first, [v1.top], 'e-direct');
    const local = await substituter(`${topology.url}/main`, first, 'e');
    await copy(local.url, first, [v2.top], 'e');
    const listed = await local.stats();
    assert.ok(listed.versionsListed > 0 && listed.versionsRemembered === 0, JSON.stringify(listed));
    const second = join(work.path, 'machine-f');
    await copy(`${topology.url}/main`, second, [v1.top], 'f-direct');
    const again = await substituter(`${topology.url}/main`, second, 'f', 'e');
    await copy(again.url, second, [v2.top], 'f');
    await assertWhole(second, v2, 'f');
    const stats = await again.stats();
    assert.ok(stats.versionsRemembered > 0, JSON.stringify(stats));
    assert.equal(stats.versionsListed + stats.versionsChunked, 0, 'nothing indexed again');
    assert.ok(stats.chunksLocal > 0 && stats.localMismatches === 0, JSON.stringify(stats));
  });

  test('a local version changed in place is not trusted: its chunks that differ are fetched', async () => {
    const store = join(work.path, 'machine-g');
    await copy(`${topology.url}/main`, store, [v1.top], 'g-direct');
    const tool = await open(join(store, v1.top, 'bin/tool'), 'r+');
    await tool.write(Buffer.alloc(200_000, 0x5a), 0, 200_000, 4096);
    await tool.close();
    const local = await substituter(`${topology.url}/main`, store, 'g', 'e');
    await copy(local.url, store, [v2.top], 'g');
    await assertWhole(store, v2, 'g');
    const stats = await local.stats();
    assert.ok(stats.versionsRemembered > 0 && stats.localMismatches > 0, JSON.stringify(stats));
    assert.ok(stats.chunksLocal > 0, 'the chunks that did not change are still used');
  });

  test('a local version that grew is indexed again; a removed one is not used', async () => {
    const grown = join(work.path, 'machine-h');
    await copy(`${topology.url}/main`, grown, [v1.top], 'h-direct');
    await appendFile(join(grown, v1.top, 'self'), 'more\n');
    const local = await substituter(`${topology.url}/main`, grown, 'h', 'e');
    await copy(local.url, grown, [v2.top], 'h');
    await assertWhole(grown, v2, 'h');
    const stats = await local.stats();
    assert.ok(stats.versionsChunked > 0 && stats.chunksLocal > 0, JSON.stringify(stats));
    const removed = join(work.path, 'machine-i');
    await copy(`${topology.url}/main`, removed, [v1.top], 'i-direct');
    await rm(join(removed, v1.top), { recursive: true });
    await rm(join(removed, v1.dep), { recursive: true });
    const other = await substituter(`${topology.url}/main`, removed, 'i', 'e');
    await copy(other.url, removed, [v2.top], 'i');
    await assertWhole(removed, v2, 'i');
    const used = await other.stats();
    assert.equal(used.versionsRemembered + used.versionsListed + used.versionsChunked, 0, JSON.stringify(used));
  });

  test('a fresh machine gets everything through it', async () => {
    const store = join(work.path, 'machine-b');
    const local = await substituter(`${topology.url}/main`, store, 'b');
    await copy(local.url, store, [v2.top], 'b');
    await assertWhole(store, v2, 'b');
    assert.ok((await local.stats()).chunksFetched > 0);
  });

  test('a corrupt chunk from the server is refused; Nix still gets the right NAR', async () => {
    const store = join(work.path, 'machine-c');
    const local = await substituter(`${proxy.url}/main`, store, 'c');
    proxy.fault = 'corrupt';
    try {
      await copy(local.url, store, [v2.top], 'c');
    } finally {
      proxy.fault = 'none';
    }
    await assertWhole(store, v2, 'c');
    const stats = await local.stats();
    assert.ok(stats.refused > 0 && stats.fallbacks > 0, JSON.stringify(stats));
  });

  test('the server cut off mid-NAR fails the copy, never a wrong path; the next copy succeeds', async () => {
    const store = join(work.path, 'machine-d');
    const local = await substituter(`${proxy.url}/main`, store, 'd');
    proxy.fault = 'cut-third';
    try {
      await assert.rejects(copy(local.url, store, [v2.top], 'd'));
    } finally {
      proxy.fault = 'none';
    }
    const valid = await run('nix', ['path-info', '--store', store, v2.top], env).then(
      () => true,
      () => false,
    );
    assert.equal(valid, false, 'the path did not become valid');
    await copy(local.url, store, [v2.top], 'd-again');
    await assertWhole(store, v2, 'd-again');
  });
});
