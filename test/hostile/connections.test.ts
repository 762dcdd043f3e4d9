import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { NarTokenWriter, writeNar } from '../../src/nix/nar-writer.ts';
import {
  assertClientError,
  assertNothingStored,
  nix32Sha256,
  pieces,
  rawExchange,
  rawRequest,
  startHostileServer,
  type Answer,
  type HostileServer,
} from './hostile-server.ts';

const MiB = 1024 * 1024;

/** `size` bytes that open with a wrong NAR magic, so a NAR upload fails at its first bytes. */
function notANar(size: number): Uint8Array {
  const body = new Uint8Array(size).fill(0x41);
  body.set(new NarTokenWriter().str('not-a-nar-at-all').finish());
  return body;
}

/** Answers to raw HTTP/1.1 exchanges: the status code of each response in the bytes the server sent. */
function statuses(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Waits for the server to drop the connection (a close or a reset); what it sent meanwhile. */
async function expectClosedWithin(socket: Socket, ms: number): Promise<string> {
  const parts: Buffer[] = [];
  socket.on('data', (part: Buffer) => parts.push(part));
  socket.on('error', () => socket.destroy());
  const patience = new AbortController();
  const closed = new Promise<boolean>((done) => socket.on('close', () => done(true)));
  const timedOut = sleep(ms, false, { signal: patience.signal }).catch(() => false);
  const wasClosed = await Promise.race([closed, timedOut]);
  patience.abort();
  socket.destroy();
  assert.ok(wasClosed, `the server kept the connection open for more than ${ms} ms`);
  return Buffer.concat(parts).toString('latin1');
}

describe('hostile connections', () => {
  let h: HostileServer;
  before(async () => {
    h = await startHostileServer({ server: { idleTimeoutMs: 1000, headersTimeoutMs: 1000 } });
  });
  after(() => h.close());

  /** The server still answers normally (a hostile request must not have broken it). */
  async function stillServing(): Promise<void> {
    const res = await fetch(h.url('nix-cache-info'));
    assert.equal(res.status, 200);
    await res.text();
  }

  test('an early refusal of a streamed multi-megabyte PUT reaches the client as a 4xx, not a reset', async () => {
    const size = 4 * MiB;
    const nar = notANar(size);
    const hash = nix32Sha256(nar);
    const cases: [label: string, path: string, headers: Record<string, string>, status: number, pattern: RegExp][] = [
      ['bad NAR', `nar/${hash}.nar`, h.auth, 400, /invalid NAR.*bad magic/],
      ['bad NAR, xz', `nar/${hash}.nar.xz`, h.auth, 400, /corrupt xz stream/],
      ['no token', `nar/${hash}.nar`, {}, 401, /needs a token/],
      ['unknown token', `nar/${hash}.nar`, { Authorization: 'Bearer nwt_nonsense' }, 401, /token/],
      ['URL hash with excess bits', `nar/z${hash.slice(1)}.nar`, h.auth, 400, /nix base-32/],
      ['unknown path', 'nar/nothing-here', h.auth, 404, /not found/],
      ['no such cache', '/nocache/nix-cache-info', h.auth, 404, /no such cache/],
      ['read-only route', `nar/${hash}.caibx`, h.auth, 405, /method not allowed/],
      ['oversized narinfo', `${'0'.repeat(32)}.narinfo`, h.auth, 413, /larger than/],
      ['oversized nix-cache-info', 'nix-cache-info', h.auth, 413, /larger than/],
    ];
    for (const [label, path, headers, status, pattern] of cases) {
      for (const framing of ['chunked', 'content-length'] as const) {
        const answer: Answer = await assertNothingStored(h.nw, () =>
          rawRequest(h.port, {
            method: 'PUT',
            path: path.startsWith('/') ? path : `/main/${path}`,
            headers: { ...headers, ...(framing === 'content-length' ? { 'Content-Length': size } : {}) },
            body: pieces(nar, 64 * 1024),
          }).catch((err: Error) =>
            assert.fail(`${label} (${framing}): the connection broke instead of an answer: ${err.message}`),
          ),
        );
        assertClientError(answer, status, pattern, `${label} (${framing})`);
      }
    }
    await stillServing();
  });

  test('an upload announced far too large is refused at once; a client that stops sending gets the answer', async () => {
    const body = notANar(4 * MiB);
    const cases: [path: string, status: number, pattern: RegExp][] = [
      [`/main/${'0'.repeat(32)}.narinfo`, 413, /larger than/],
      [`/main/log/${'0'.repeat(32)}-x.drv`, 413, /larger than/],
      ['/_api/v1/caches', 403, /admin/],
    ];
    for (const [path, status, pattern] of cases) {
      const answer = await assertNothingStored(h.nw, () =>
        rawRequest(h.port, {
          method: path.startsWith('/_api') ? 'POST' : 'PUT',
          path,
          headers: { ...h.auth, 'Content-Length': 10 * 1024 ** 3 },
          body: pieces(body, 64 * 1024),
          stopOnAnswer: true,
        }),
      );
      assertClientError(answer, status, pattern, path);
    }
    await stillServing();
  });

  test('huge headers get 431 from Node and the server keeps serving', async () => {
    const big = `GET /main/nix-cache-info HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`;
    assert.deepEqual(statuses(await rawExchange(h.port, big)), [431]);
    const many = `GET /main/nix-cache-info HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 4000 }, (_, i) => `X-H${i}: ${'v'.repeat(20)}\r\n`).join('')}\r\n`;
    assert.deepEqual(statuses(await rawExchange(h.port, many)), [431]);
    const longUrl = `GET /main/${'a'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`;
    assert.deepEqual(statuses(await rawExchange(h.port, longUrl)), [431]);
    await stillServing();
  });

  test('malformed requests get 400 from Node and the server keeps serving', async () => {
    const nar = writeNar({ type: 'regular', contents: Buffer.from('hello') });
    const target = `/main/nar/${nix32Sha256(nar)}.nar`;
    const auth = h.auth.Authorization;
    const requests = [
      // Both framings at once: the classic request smuggling attempt.
      `PUT ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: ${nar.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      `PUT ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: -5\r\n\r\n`,
      `PUT ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: 12abc\r\n\r\n`,
      `PUT ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n`,
      `PUT ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
      'GARBAGE\r\n\r\n',
      `GET /main/nix-cache-info\0 HTTP/1.1\r\nHost: x\r\n\r\n`,
    ];
    for (const raw of requests) {
      await assertNothingStored(h.nw, async () => {
        const got = statuses(await rawExchange(h.port, raw));
        assert.equal(got[0], 400, `${JSON.stringify(raw.slice(0, 120))}: ${got.join(',')}`);
      });
    }
    await stillServing();
  });

  test('Content-Length lies: a shorter declared length cuts the NAR, a longer one never completes it', async () => {
    const nar = writeNar({ type: 'directory', entries: { a: { type: 'regular', contents: Buffer.alloc(1000, 1) } } });
    const target = `/main/nar/${nix32Sha256(nar)}.nar`;
    const head = (length: number) =>
      `PUT ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${h.auth.Authorization}\r\nContent-Length: ${length}\r\n\r\n`;

    // Shorter: the NAR ends early, and what follows is not a request: Node's parser answers 400
    // (before or instead of our 400 for the truncated NAR).
    await assertNothingStored(h.nw, async () => {
      const raw = await rawExchange(h.port, Buffer.concat([Buffer.from(head(nar.length - 100)), nar]));
      assert.equal(statuses(raw)[0], 400, raw);
    });

    // Longer, then the client closes its side: the request never completes and nothing is stored.
    await assertNothingStored(h.nw, async () => {
      const socket = connect(h.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.end(Buffer.concat([Buffer.from(head(nar.length + 100)), nar]));
      const raw = await expectClosedWithin(socket, 5000);
      for (const status of statuses(raw)) assert.ok(status >= 400 && status < 500, raw);
    });

    // Longer, and the client just stops sending: dropped after the idle timeout, nothing stored.
    await assertNothingStored(h.nw, async () => {
      const socket = connect(h.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(Buffer.concat([Buffer.from(head(nar.length + 100)), nar]));
      const raw = await expectClosedWithin(socket, 5000);
      for (const status of statuses(raw)) assert.ok(status >= 400 && status < 500, raw);
    });
    assert.deepEqual(
      h.logged.filter((line) => line.startsWith('error')),
      [],
      'a client that went away is not a server error',
    );
    await stillServing();
  });

  test('a slow honest upload succeeds: the idle timeout is not a deadline', async () => {
    const nar = writeNar({
      type: 'directory',
      entries: { slow: { type: 'regular', contents: Buffer.from('uploaded one piece at a time') } },
    });
    const before = await h.nw.meta.stats();
    // 16 bytes every 200 ms: about 4 s in all, four times the 1 s idle timeout.
    async function* slowly(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < nar.length; i += 16) {
        await sleep(200);
        yield nar.subarray(i, i + 16);
      }
    }
    const answer = await rawRequest(h.port, {
      method: 'PUT',
      path: `/main/nar/${nix32Sha256(nar)}.nar`,
      headers: { ...h.auth, 'Content-Length': nar.length },
      body: slowly(),
    });
    assert.equal(answer.status, 204, answer.body);
    assert.equal((await h.nw.meta.stats()).nars, before.nars + 1);
  });

  test('an idle client is dropped after the idle timeout; slow headers after the headers timeout', async () => {
    const silent = connect(h.port, '127.0.0.1');
    await once(silent, 'connect');
    await expectClosedWithin(silent, 5000);

    const idleAfterHeaders = connect(h.port, '127.0.0.1');
    await once(idleAfterHeaders, 'connect');
    idleAfterHeaders.write('GET /main/nix-cache-info HTTP/1.1\r\nHost: x\r\n');
    await expectClosedWithin(idleAfterHeaders, 5000);

    // One header byte every 200 ms keeps the socket busy, but the headers never end.
    const slowloris = connect(h.port, '127.0.0.1');
    await once(slowloris, 'connect');
    slowloris.write('GET /main/nix-cache-info HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const drip = setInterval(() => slowloris.writable && slowloris.write('a'), 200);
    try {
      const raw = await expectClosedWithin(slowloris, 8000);
      for (const status of statuses(raw)) assert.equal(status, 408);
    } finally {
      clearInterval(drip);
    }
    await stillServing();
  });
});
