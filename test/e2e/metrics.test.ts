/**
 * `/metrics` of the real `narwhal serve`: the counters a real Nix push and substitution move,
 * checked by `promtool check metrics`; with `--processes 2`, the figures of both processes
 * whichever answers; and the limits on access (a bearer token, a listener of its own).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promtoolCheck, sample } from '../helpers/prometheus-text.ts';
import {
  assertClosureInStore,
  buildClosure,
  makeSigningKey,
  narwhal,
  nixEnv,
  run,
  type RunningServer,
  startServer,
  tempDir,
  writeNetrc,
  copyFrom,
} from './harness.ts';

/** GET over a connection of its own (so that with several processes, each may answer one). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (part: string) => {
        body += part;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const ABSENT = (n: number): string => `${'0'.repeat(31)}${'abcdfghijklmnpqrsvwxyz0123456789'[n % 32]}`;

describe('metrics after a real Nix push and substitution', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    work = await tempDir('metrics');
    env = nixEnv(work.path);
    server = await startServer(join(work.path, 'data'));
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('requests, bytes, narinfo hits and misses, NARs new and deduplicated, store gauges', async () => {
    const data = ['--data-dir', server.dataDir];
    await narwhal(['cache', 'create', 'other', '--public', ...data]);
    const token = JSON.parse(
      await narwhal(['token', 'create', '--cache', 'main,other', '--perm', 'push', '--json', ...data]),
    ) as { secret: string };
    await writeNetrc(work.path, token.secret);
    const { secretKey: sk, publicKey } = await makeSigningKey(work.path, 'narwhal-metrics-1', env);
    const closure = await buildClosure(env, work.path, randomBytes(4).toString('hex'));

    await run('nix', ['copy', '--to', `${server.url}/main?secret-key=${sk}`, closure.top, closure.added], env);
    // The same NARs pushed to another cache under other names (another compression): stored once.
    const other = `${server.url}/other?compression=zstd&secret-key=${sk}`;
    await run('nix', ['copy', '--to', other, closure.top, closure.added], env);
    const store = join(work.path, 'store');
    await copyFrom(`${server.url}/main`, store, [closure.top], publicKey, {
      ...env,
      XDG_CACHE_HOME: join(work.path, 'fresh-cache'),
    });
    await assertClosureInStore(store, closure, publicKey, env);
    assert.equal((await get(`${server.url}/main/${ABSENT(1)}.narinfo`)).status, 404);

    const scraped = await get(`${server.url}/metrics`);
    assert.equal(scraped.status, 200);
    assert.equal(await promtoolCheck(scraped.body), '');
    // The server is fresh and this is its first scrape (the store's gauges are read now).
    const moved = (name: string, labels: Record<string, string> = {}) => sample(scraped.body, name, labels);
    // Three paths (top, dep, added) per push.
    assert.equal(moved('narwhal_nars_ingested_total', { outcome: 'new' }), 3);
    assert.equal(moved('narwhal_nars_ingested_total', { outcome: 'deduplicated' }), 3);
    assert.ok(moved('narwhal_chunks_ingested_total', { outcome: 'new' }) >= 3);
    assert.ok(moved('narwhal_chunks_ingested_total', { outcome: 'deduplicated' }) >= 3);
    assert.equal(moved('narwhal_http_requests_total', { route: 'nar', method: 'PUT', status: '204' }), 6);
    assert.equal(moved('narwhal_http_requests_total', { route: 'narinfo', method: 'PUT', status: '204' }), 6);
    assert.ok(moved('narwhal_http_received_bytes_total', { route: 'nar' }) > 100_000, 'the NARs went in');
    assert.ok(moved('narwhal_http_sent_bytes_total', { route: 'nar' }) > 100_000, 'and came out');
    assert.ok(moved('narwhal_narinfo_lookups_total', { result: 'hit' }) >= 2, 'top and dep were found');
    assert.ok(moved('narwhal_narinfo_lookups_total', { result: 'miss' }) >= 1);
    assert.ok(moved('narwhal_errors_total', { kind: 'not-found' }) >= 1);
    assert.ok(moved('narwhal_http_request_duration_seconds_count', { route: 'narinfo', method: 'GET' }) >= 3);
    assert.equal(sample(scraped.body, 'narwhal_store_paths'), 6);
    assert.equal(sample(scraped.body, 'narwhal_store_nars'), 3);
    assert.ok(sample(scraped.body, 'narwhal_store_stored_bytes') > 0);
    assert.ok(sample(scraped.body, 'narwhal_store_nar_bytes') > sample(scraped.body, 'narwhal_store_stored_bytes'));
    // Route labels are names, never paths.
    assert.doesNotMatch(scraped.body, /route="[^"]*\//);
  });
});

describe('metrics with --processes 2, a metrics token and a metrics listener', () => {
  const TOKEN = 'metrics-secret-1';
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;
  let metricsUrl: string;

  before(async () => {
    work = await tempDir('metrics-processes');
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}`;
    server = await startServer(join(work.path, 'data'), [
      '--processes',
      '2',
      '--metrics-token',
      TOKEN,
      '--metrics-listen',
      `127.0.0.1:${port}`,
      '--log-format',
      'json',
    ]);
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('each scrape counts the requests of both processes, whichever answers it', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const LOOKUPS = 12;
    for (let i = 0; i < LOOKUPS; i++) assert.equal((await get(`${server.url}/main/${ABSENT(i)}.narinfo`)).status, 404);
    const scrapes = await Promise.all(Array.from({ length: 4 }, () => get(`${metricsUrl}/metrics`, auth)));
    for (const scrape of scrapes) {
      assert.equal(scrape.status, 200);
      assert.equal(sample(scrape.body, 'narwhal_narinfo_lookups_total', { result: 'miss' }), LOOKUPS);
      assert.equal(
        sample(scrape.body, 'narwhal_http_requests_total', { route: 'narinfo', method: 'GET', status: '404' }),
        LOOKUPS,
      );
    }
    assert.equal(await promtoolCheck(scrapes[0].body), '');
    // Connections are dealt to the two processes in turn, so each answered some of the lookups and
    // some of the scrapes: a scrape that showed only its own process's figures would count fewer.
  });

  test('the metrics listener wants the token, serves nothing else, and the main one has no /metrics', async () => {
    assert.equal((await get(`${metricsUrl}/metrics`)).status, 401);
    assert.equal((await get(`${metricsUrl}/metrics`, { Authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await get(`${metricsUrl}/main/nix-cache-info`)).status, 404);
    assert.equal((await get(`${server.url}/metrics`)).status, 404);
  });

  test('log lines are JSON objects with the request id the client sent, or one made up', async () => {
    const sent = await new Promise<string | undefined>((resolve, reject) => {
      request(`${server.url}/main/nix-cache-info`, { agent: false, headers: { 'X-Request-Id': 'trace-42' } }, (res) => {
        res.resume();
        resolve(res.headers['x-request-id'] as string | undefined);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(sent, 'trace-42');
    const insane = await new Promise<string | undefined>((resolve, reject) => {
      request(`${server.url}/main/nix-cache-info`, { agent: false, headers: { 'X-Request-Id': 'a b"c' } }, (res) => {
        res.resume();
        resolve(res.headers['x-request-id'] as string | undefined);
      })
        .on('error', reject)
        .end();
    });
    assert.match(insane ?? '', /^[0-9a-f-]{36}$/);
    const deadline = Date.now() + 5000;
    let line: Record<string, unknown> | undefined;
    while (!line && Date.now() < deadline) {
      line = server
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((entry) => entry.requestId === 'trace-42');
      if (!line) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(line, 'the request was logged');
    assert.equal(line.method, 'GET');
    assert.equal(line.route, 'nix-cache-info');
    assert.equal(line.status, 200);
    assert.equal(line.level, 'info');
    assert.equal(typeof line.durationMs, 'number');
    assert.ok((line.bytes as number) > 0);
    assert.ok(!Number.isNaN(Date.parse(line.time as string)));
    for (const other of server.output().trim().split('\n')) JSON.parse(other);
  });
});

describe('metrics token on the main listener, given as NARWHAL_METRICS_TOKEN', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;

  before(async () => {
    work = await tempDir('metrics-env');
    // The server takes its environment when it is spawned.
    process.env.NARWHAL_METRICS_TOKEN = 'from-the-environment';
    try {
      server = await startServer(join(work.path, 'data'));
    } finally {
      delete process.env.NARWHAL_METRICS_TOKEN;
    }
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('without the token 401 and nothing else; with it the figures', async () => {
    const refused = await get(`${server.url}/metrics`);
    assert.equal(refused.status, 401);
    assert.doesNotMatch(refused.body, /narwhal_/);
    assert.equal((await get(`${server.url}/metrics`, { Authorization: 'Bearer from-the-flag' })).status, 401);
    const scraped = await get(`${server.url}/metrics`, { Authorization: 'Bearer from-the-environment' });
    assert.equal(scraped.status, 200);
    assert.ok(sample(scraped.body, 'narwhal_http_requests_total', { route: 'metrics', status: '401' }) >= 2);
    assert.equal((await get(`${server.url}/main/nix-cache-info`)).status, 200, 'the caches need no metrics token');
  });
});
