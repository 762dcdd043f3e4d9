/**
 * `narwhal serve --tls-cert --tls-key`: HTTP/2 through ALPN, HTTP/1.1 to clients without it.
 * Real Nix copies closures to and from the cache over TLS with its `http2` setting on and off;
 * curl checks the protocol negotiated, Range and HEAD over HTTP/2, uploads announced with
 * `Expect: 100-continue`, the management API, and `--processes 2`. The certificates are made
 * here with openssl: a CA and a server certificate for 127.0.0.1.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTestCertificates, type TestCertificates } from '../helpers/tls-certs.ts';
import {
  assertClosureInStore,
  buildClosure,
  makeSigningKey,
  narwhal,
  nixEnv,
  REPO,
  run,
  type RunningServer,
  startServer,
  tempDir,
  writeNetrc,
  copyFrom,
} from './harness.ts';

const execFileAsync = promisify(execFile);

describe('narwhal serve over TLS with HTTP/2', () => {
  let work: { path: string; remove(): Promise<void> };
  let certs: TestCertificates;
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;
  let secretKey: string;
  let publicKey: string;
  let token: string;
  /** The NAR of the content-addressed path of the first closure, as `nix-store --dump` writes it. */
  let pushed: { storePath: string; nar: Buffer } | undefined;
  /** Its plain NAR's URL. */
  let narUrl: string | undefined;

  /** curl against the server, trusting the test CA; the body, then the protocol and status on the last line. */
  const curl = async (args: string[]): Promise<{ body: string; version: string; status: number }> => {
    const { stdout } = await execFileAsync('curl', [
      '-sS',
      '--cacert',
      certs.ca,
      '-w',
      '\n%{http_version} %{http_code}',
      ...args,
    ]);
    const cut = stdout.lastIndexOf('\n');
    const [version, status] = stdout.slice(cut + 1).split(' ');
    return { body: stdout.slice(0, cut), version, status: Number(status) };
  };

  before(async () => {
    work = await tempDir('e2e-tls');
    certs = await makeTestCertificates(work.path);
    // Nix 2.8 trusts the CAs of NIX_SSL_CERT_FILE (it has no ssl-cert-file setting yet).
    env = { ...nixEnv(work.path), NIX_SSL_CERT_FILE: certs.ca };
    ({ secretKey, publicKey } = await makeSigningKey(work.path, 'narwhal-tls-1', env));
    server = await startServer(join(work.path, 'data'), ['--tls-cert', certs.cert, '--tls-key', certs.key]);
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    token = (
      JSON.parse(
        await narwhal(['token', 'create', '--data-dir', server.dataDir, '--cache', 'main', '--perm', 'push', '--json']),
      ) as { secret: string }
    ).secret;
    await writeNetrc(work.path, token);
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await work?.remove();
    }
  });

  for (const http2 of [true, false]) {
    test(`nix copy --to and --from https with http2 = ${http2}, signatures checked`, async () => {
      const closure = await buildClosure(env, work.path, `tls-${http2}-${randomBytes(4).toString('hex')}`);
      const option = ['--option', 'http2', String(http2)];
      const before = server.requests().length;
      await run(
        'nix',
        ['copy', ...option, '--to', `${server.url}/main?secret-key=${secretKey}`, closure.top, closure.added],
        env,
      );
      const store = join(work.path, `store-http2-${http2}`);
      const fresh = { ...env, XDG_CACHE_HOME: join(work.path, `cache-http2-${http2}`) };
      await copyFrom(`${server.url}/main`, store, [closure.top, closure.added], publicKey, fresh, option);
      await assertClosureInStore(store, closure, publicKey, fresh);

      const requests = server.requests().slice(before);
      const puts = requests.filter((line) => line.startsWith('PUT /main/nar/'));
      const gets = requests.filter((line) => line.startsWith('GET /main/nar/'));
      assert.ok(puts.length >= 3 && gets.length >= 3, `NARs went both ways:\n${requests.join('\n')}`);
      // Nix's curl offers HTTP/2 through ALPN unless told not to; the server logs which it spoke.
      for (const line of requests) assert.equal(line.endsWith(' HTTP/2'), http2, line);
      if (!pushed) {
        const dump = await execFileAsync('nix-store', ['--dump', closure.added], { env, encoding: 'buffer' });
        pushed = { storePath: closure.added, nar: dump.stdout };
      }
    });
  }

  test('curl negotiates HTTP/2 when it offers it, and HTTP/1.1 when it does not', async () => {
    const h2 = await curl(['--http2', `${server.url}/main/nix-cache-info`]);
    assert.equal(h2.version, '2');
    assert.equal(h2.status, 200);
    assert.match(h2.body, /^StoreDir: \/nix\/store$/m);
    const h1 = await curl(['--http1.1', `${server.url}/main/nix-cache-info`]);
    assert.equal(h1.version, '1.1');
    assert.equal(h1.body, h2.body);
    // Many lookups on one HTTP/2 connection, absent ones among them.
    const many = await curl([
      '--http2',
      `${server.url}/main/nix-cache-info`,
      `${server.url}/main/${'0'.repeat(32)}.narinfo`,
    ]);
    assert.match(many.body, /no such path|not found/);
    assert.equal(many.status, 404);
  });

  test('Range and HEAD over HTTP/2 read the NAR as stored', async () => {
    assert.ok(pushed, 'a closure was pushed');
    const hashPart = pushed.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    const narinfo = await curl(['--http2', `${server.url}/main/${hashPart}.narinfo`]);
    assert.equal(narinfo.status, 200);
    const narHash = /^NarHash: sha256:(\w+)$/m.exec(narinfo.body)?.[1];
    assert.ok(narHash, narinfo.body);
    narUrl = `${server.url}/main/nar/${narHash}.nar`;

    const head = await curl(['--http2', '-I', narUrl]);
    assert.equal(head.version, '2');
    assert.equal(head.status, 200);
    assert.match(head.body, new RegExp(`^content-length: ${pushed.nar.length}\\r?$`, 'mi'));
    assert.match(head.body, /^accept-ranges: bytes\r?$/im);

    const sentForNars = async (): Promise<number> => {
      const metrics = await curl(['--http2', `${server.url}/metrics`]);
      const line = /^narwhal_http_sent_bytes_total\{route="nar"\} (\d+)$/m.exec(metrics.body);
      return line ? Number(line[1]) : 0;
    };
    const sentBefore = await sentForNars();
    const out = join(work.path, 'range.bin');
    const range = await curl(['--http2', '-r', '100-4195', '-o', out, narUrl]);
    assert.equal(range.version, '2');
    assert.equal(range.status, 206);
    assert.deepEqual(await readFile(out), pushed.nar.subarray(100, 4196));
    // Streams share the connection: the metrics count the stream's body, not the socket's traffic.
    assert.equal((await sentForNars()) - sentBefore, 4096);
    const beyond = await curl(['--http2', '-r', `${pushed.nar.length + 10}-`, '-o', '/dev/null', narUrl]);
    assert.equal(beyond.status, 416);
  });

  test('uploads announced with Expect: 100-continue over HTTP/2: refused without a token, bad NARs refused with nothing stored', async () => {
    const junk = join(work.path, 'junk.nar');
    await writeFile(junk, randomBytes(3 * 1024 * 1024));
    const name = `${server.url}/main/nar/${'1'.repeat(52)}.nar`;
    const anonymous = await curl(['--http2', '-H', 'Expect: 100-continue', '-T', junk, name]);
    assert.equal(anonymous.version, '2');
    assert.equal(anonymous.status, 401);
    const bad = await curl([
      '--http2',
      '-H',
      'Expect: 100-continue',
      '-H',
      `Authorization: Bearer ${token}`,
      '-T',
      junk,
      name,
    ]);
    assert.equal(bad.status, 400);
    assert.match(bad.body, /NAR/i);
    const after = await curl(['--http2', '-I', '-H', `Authorization: Bearer ${token}`, name]);
    assert.equal(after.status, 404);
    // The connection is still good for the next request.
    assert.equal((await curl(['--http2', `${server.url}/main/nix-cache-info`])).status, 200);
  });

  test('the management API answers over HTTP/2', async () => {
    const caches = await curl(['--http2', '-H', `Authorization: Bearer ${token}`, `${server.url}/_api/v1/caches`]);
    assert.equal(caches.version, '2');
    assert.equal(caches.status, 200);
    assert.ok((JSON.parse(caches.body) as { name: string }[]).some((c) => c.name === 'main'));
    const refused = await curl(['--http2', `${server.url}/_api/v1/caches`]);
    assert.equal(refused.status, 401);
  });

  test('/metrics counts the bytes of a NAR sent over HTTP/2', async () => {
    assert.ok(narUrl && pushed, 'a NAR was read above');
    const sent = async (): Promise<number> => {
      const metrics = await curl(['--http2', `${server.url}/metrics`]);
      assert.deepEqual([metrics.version, metrics.status], ['2', 200]);
      return Number(/^narwhal_http_sent_bytes_total\{[^}]*route="nar"[^}]*\} (\S+)$/m.exec(metrics.body)?.[1] ?? 0);
    };
    const before = await sent();
    const get = await curl(['--http2', '-o', '/dev/null', narUrl]);
    assert.deepEqual([get.version, get.status], ['2', 200]);
    assert.ok((await sent()) - before >= pushed.nar.length, 'the NAR counted in the bytes sent');
  });

  test('--processes 2 serves TLS and HTTP/2', async () => {
    const many = await startServer(join(work.path, 'data'), [
      '--tls-cert',
      certs.cert,
      '--tls-key',
      certs.key,
      '--processes',
      '2',
    ]);
    try {
      for (let i = 0; i < 4; i++) {
        const answer = await curl(['--http2', `${many.url}/main/nix-cache-info`]);
        assert.deepEqual([answer.version, answer.status], ['2', 200]);
      }
    } finally {
      await many.stop();
    }
  });

  test('a missing certificate, or a key that is not its own, stops the start with a clear error', async () => {
    const start = (args: string[]) =>
      execFileAsync(process.execPath, [
        join(REPO, 'bin/narwhal.js'),
        'serve',
        '--data-dir',
        join(work.path, 'data'),
        '--listen',
        '127.0.0.1:0',
        ...args,
      ]);
    await assert.rejects(
      start(['--tls-cert', join(work.path, 'absent.pem'), '--tls-key', certs.key]),
      (err: { stderr: string; code: number }) => {
        assert.equal(err.code, 2);
        assert.match(err.stderr, /cannot read --tls-cert .*absent\.pem/);
        return true;
      },
    );
    await assert.rejects(
      start(['--tls-cert', certs.cert, '--tls-key', join(work.path, 'ca.key')]),
      (err: { stderr: string; code: number }) => {
        assert.equal(err.code, 2);
        assert.match(err.stderr, /cannot serve TLS with --tls-cert/);
        return true;
      },
    );
    await assert.rejects(start(['--tls-cert', certs.cert]), /--tls-cert and --tls-key go together/);
  });
});
