/**
 * `narwhal push` sending chunks as deltas (chunk lists v2), with the real Nix 2.8 store: a patch
 * release of real software (a real binary and real text files, added with `nix-store --add` and
 * built into a signed, input-addressed path) pushed after its previous version sends a small
 * share of what that version did, and substitutes into a fresh store with signatures required.
 * When the bases the client chose are collected between its question and its upload, the server
 * refuses the deltas and the client sends those chunks plain: the push still succeeds, exact.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { zstdCompressSync } from 'node:zlib';
import { pushPaths, type PushProgress } from '../../src/client/push.ts';
import { runGc } from '../../src/maintenance/gc.ts';
import { CHUNK_LIST_VERSION_HEADER } from '../../src/push/chunk-list-body.ts';
import { createNarwhalServer } from '../../src/server/server.ts';
import { createToken } from '../../src/tenancy/tokens.ts';
import { readNarBytes } from '../../src/serving/nar-reader.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { narHashOf, tempNarwhal, type TempNarwhal } from '../helpers/narwhal-fixtures.ts';
import { makeSigningKey, nixEnv, REPO, run, tempDir, copyFrom } from './harness.ts';
import { startEmbedded, type Topology } from './topology.ts';

const execFileAsync = promisify(execFile);

/** A package name of letters only: `packageName` cuts a store name at the first `-` and digit. */
const packageOf = (): string =>
  `nwdelta${Array.from(randomBytes(8), (b) => String.fromCharCode(97 + (b % 26))).join('')}`;

interface Release {
  /** The tree added with `nix-store --add` (content-addressed). */
  src: string;
  /** An input-addressed path built from it, which stock Nix accepts only signed. */
  built: string;
}

/**
 * Release `version` of a package: /usr/bin/nix and TypeScript's lib .d.ts files; each later
 * release patches the binary every 300 kB (as a version string does) and inserts a line in every
 * third text file.
 */
async function makeRelease(work: string, pkg: string, version: number, env: NodeJS.ProcessEnv): Promise<Release> {
  const dir = join(work, `${pkg}-src-1.${version}`);
  await mkdir(join(dir, 'bin'), { recursive: true });
  const binary = await readFile('/usr/bin/nix');
  for (let at = 1000 * version; at < binary.length; at += 300_000) binary[at] ^= 0x5a;
  await writeFile(join(dir, 'bin', 'tool'), binary, { mode: 0o755 });
  const lib = join(REPO, 'node_modules/typescript/lib');
  const texts = (await readdir(lib)).filter((f) => /^lib\.es20\d\d.*\.d\.ts$/.test(f)).sort();
  await mkdir(join(dir, 'lib'));
  for (const [i, file] of texts.entries()) {
    const text = await readFile(join(lib, file), 'utf8');
    const lines = text.split('\n');
    for (let k = 2; k <= version; k++) if (i % 3 === k % 3) lines.splice(lines.length >> 1, 0, `// release 1.${k}`);
    await writeFile(join(dir, 'lib', file), lines.join('\n'));
  }
  const src = (await run('nix-store', ['--add', dir], env)).trim();
  const expr = `derivation {
    name = "${pkg}-1.${version}"; system = builtins.currentSystem; builder = "/bin/sh";
    src = ${src};
    args = [ "-c" "/bin/cp -r $src $out && /bin/chmod -R u+w $out && echo $out > $out/self" ];
  }`;
  const exprFile = join(work, `${pkg}-1.${version}.nix`);
  await writeFile(exprFile, expr);
  const built = (await run('nix-build', ['--no-out-link', exprFile], env)).trim();
  return { src, built };
}

/** A store path's NAR, as `nix-store --dump` writes it. */
async function dumpNar(path: string, env: NodeJS.ProcessEnv): Promise<Buffer> {
  const { stdout } = await execFileAsync('nix-store', ['--dump', path], {
    env,
    encoding: 'buffer',
    maxBuffer: 1 << 30,
  });
  return stdout;
}

describe('narwhal push with deltas against narwhal serve', () => {
  let work: { path: string; remove(): Promise<void> };
  let topology: Topology;
  let cache: string;
  let env: NodeJS.ProcessEnv;
  let secretKey: string;
  let publicKey: string;
  let token: string;
  const pkg = packageOf();
  let v1: Release;
  let v2: Release;

  const push = async (paths: string[], options: string[] = []) =>
    JSON.parse(
      await run(
        process.execPath,
        [
          join(REPO, 'bin/narwhal.js'),
          'push',
          '--cache',
          cache,
          '--signing-key',
          secretKey,
          '--json',
          ...options,
          ...paths,
        ],
        { ...env, NARWHAL_TOKEN: token },
      ),
    ) as PushProgress & { seconds: number };

  before(async () => {
    work = await tempDir('e2e-push-deltas');
    env = nixEnv(work.path);
    ({ secretKey, publicKey } = await makeSigningKey(work.path, 'narwhal-delta-1', env));
    topology = await startEmbedded(work.path);
    cache = `${topology.url}/main`;
    token = (
      JSON.parse(await topology.narwhal(['token', 'create', '--cache', 'main', '--perm', 'push', '--json'])) as {
        secret: string;
      }
    ).secret;
    v1 = await makeRelease(work.path, pkg, 1, env);
    v2 = await makeRelease(work.path, pkg, 2, env);
  });

  after(async () => {
    try {
      await topology?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('the next release sends its changed chunks as deltas: a small share of the bytes, and substitutes exact', async () => {
    const first = await push([v1.src, v1.built]);
    assert.equal(first.pushed, 2);
    assert.equal(first.deltasSent, 0, 'the cache had no earlier release');
    const second = await push([v2.src, v2.built]);
    assert.equal(second.pushed, 2);
    assert.ok(second.deltasSent > 0, `${second.deltasSent} of ${second.chunksSent} chunks sent went as deltas`);
    const zstd = zstdCompressSync(await dumpNar(v2.src, env)).length;
    assert.ok(
      second.bytesSent < zstd / 10,
      `release 1.2 sent ${second.bytesSent} B; its NAR is ${zstd} B with zstd, release 1.1 sent ${first.bytesSent} B`,
    );
    assert.ok(second.bytesSent < first.bytesSent / 10);
    // --no-deltas sends the next release's changed chunks whole.
    const v3 = await makeRelease(work.path, pkg, 3, env);
    const third = await push([v3.src], ['--no-deltas']);
    assert.equal(third.pushed, 1);
    assert.ok(third.chunksSent > 0);
    assert.equal(third.deltasSent, 0);
    const posts = topology.writer.requests().filter((line) => line.startsWith('POST /_api/v1/caches/main/nars'));
    for (const line of posts) assert.match(line, / 201$/, 'no delta was refused');

    const store = join(work.path, 'fresh-store');
    const clientEnv = { ...env, XDG_CACHE_HOME: join(work.path, 'cache-fresh') };
    await copyFrom(cache, store, [v2.built], publicKey, clientEnv);
    const verify = await run(
      'nix',
      ['store', 'verify', '--store', store, '--trusted-public-keys', publicKey, '--sigs-needed', '1', v2.built],
      clientEnv,
    );
    assert.equal(verify.trim(), '');
    const here = (p: string) => join(store, p);
    assert.deepEqual(await readFile(here(join(v2.built, 'bin/tool'))), await readFile(join(v2.src, 'bin/tool')));
    assert.equal(await readFile(here(join(v2.built, 'self')), 'utf8'), `${v2.built}\n`);
  });
});

describe('narwhal push when the bases it chose are collected before its upload', () => {
  let t: TempNarwhal;
  let server: Server;
  let work: { path: string; remove(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  const statuses: string[] = [];

  before(async () => {
    work = await tempDir('e2e-push-deltas-gc');
    env = nixEnv(work.path);
    t = await tempNarwhal();
  });

  after(async () => {
    server?.closeAllConnections();
    server?.close();
    await t?.close();
    await work?.remove();
  });

  test('the server refuses the deltas, the client sends those chunks plain, and the NAR is exact', async () => {
    const pkg = packageOf();
    const v1 = await makeRelease(work.path, pkg, 1, env);
    const v2 = await makeRelease(work.path, pkg, 3, env);
    const narwhal = createNarwhalServer(t.nw, { log: () => undefined });
    const handle = narwhal.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
    // After the first question naming chunks, v1 is deleted and collected; the upload waits for that.
    let armed = false;
    let collecting: Promise<void> | undefined;
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const url = req.url ?? '';
      if (
        armed &&
        url.endsWith('/missing-chunks') &&
        collecting === undefined &&
        Number(req.headers['content-length']) > 0
      ) {
        res.once('finish', () => {
          collecting = (async () => {
            const main = (await t.nw.meta.getCache('main'))!;
            await t.nw.meta.deletePaths(main.id, [basename(v1.src).slice(0, 32), basename(v1.built).slice(0, 32)]);
            await runGc(t.nw, { graceMs: 0, clockMarginMs: 0 });
            await runGc(t.nw, { graceMs: 0, clockMarginMs: 0, now: Date.now() + 10_000 });
          })();
        });
      }
      if (url.includes('/nars?')) {
        // Each upload's status, and for a 409 what it asks for (missing chunks, or missing bases).
        const end = res.end.bind(res) as (body?: unknown) => ServerResponse;
        res.end = ((body?: unknown) => {
          const asked = res.statusCode === 409 ? ` ${Object.keys(JSON.parse(String(body)) as object).join(',')}` : '';
          statuses.push(`${res.statusCode}${asked}`);
          return end(body);
        }) as typeof res.end;
        void (async () => {
          await collecting;
          handle(req, res);
        })();
        return;
      }
      handle(req, res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
    const tokenSecret = (await createToken(t.nw, { caches: ['main'], perms: ['pull', 'push'] })).secret;
    const options = { cacheUrl: url, token: tokenSecret, jobs: 1 };

    await pushPaths([v1.src], options);
    assert.deepEqual(statuses, ['201']);
    armed = true;
    const result = await pushPaths([v2.src], options);
    assert.equal(result.pushed, 1);
    assert.equal(
      statuses[1],
      '409 error,missingBases',
      `the first upload of v2 named collected bases: ${statuses.join(' ')}`,
    );
    assert.equal(statuses.at(-1), '201');

    const dump = await dumpNar(v2.src, env);
    const stored = await t.nw.meta.getNar(narHashOf(dump));
    assert.ok(stored, 'the NAR of v2 is stored');
    const served: Uint8Array[] = [];
    for await (const piece of readNarBytes(t.nw, stored)) served.push(piece);
    assertSameBytes(Buffer.concat(served), dump);
  });
});

describe('narwhal push against a server that reads only chunk lists of version 1', () => {
  let t: TempNarwhal;
  let server: Server;
  let work: { path: string; remove(): Promise<void> };

  before(async () => {
    work = await tempDir('e2e-push-deltas-v1');
    t = await tempNarwhal();
  });

  after(async () => {
    server?.closeAllConnections();
    server?.close();
    await t?.close();
    await work?.remove();
  });

  test('a server that does not say it reads version 2 gets version-1 lists with plain frames', async () => {
    const env = nixEnv(work.path);
    const pkg = packageOf();
    const v1 = await makeRelease(work.path, pkg, 1, env);
    const v2 = await makeRelease(work.path, pkg, 2, env);
    const versions: number[] = [];
    server = createNarwhalServer(t.nw, { log: () => undefined });
    const handle = server.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // What a server before version 2 answers: no version header; and the version each list has.
      const writeHead = res.writeHead.bind(res) as (
        status: number,
        headers?: Record<string, unknown>,
      ) => ServerResponse;
      res.writeHead = ((status: number, headers?: Record<string, unknown>) => {
        res.removeHeader(CHUNK_LIST_VERSION_HEADER);
        if (headers) delete headers[CHUNK_LIST_VERSION_HEADER];
        return writeHead(status, headers);
      }) as typeof res.writeHead;
      if ((req.url ?? '').includes('/nars?')) {
        // The list's version byte, seen as the body starts flowing to the handler.
        const pipe = req.pipe.bind(req);
        req.pipe = ((destination: NodeJS.WritableStream) => {
          req.once('data', (first: Buffer) => versions.push(first[4]));
          return pipe(destination);
        }) as typeof req.pipe;
      }
      handle(req, res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
    const token = (await createToken(t.nw, { caches: ['main'], perms: ['pull', 'push'] })).secret;
    await pushPaths([v1.src], { cacheUrl: url, token, jobs: 1 });
    const second = await pushPaths([v2.src], { cacheUrl: url, token, jobs: 1 });
    assert.equal(second.pushed, 1);
    assert.equal(second.deltasSent, 0);
    assert.ok(second.chunksSent > 0);
    assert.deepEqual(versions, [1, 1]);
    const dump = await dumpNar(v2.src, env);
    assert.ok(await t.nw.meta.getNar(narHashOf(dump)), 'the NAR of v2 is stored');
  });
});
