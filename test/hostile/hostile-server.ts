import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { createNarwhalServer, type ServerOptions } from '../../src/server/server.ts';
import { createToken } from '../../src/tenancy/tokens.ts';
import type { Narwhal, NarwhalOptions } from '../../src/context/narwhal.ts';
import type { StoreStats } from '../../src/metadata/metadata-store.ts';
import { encodeNixBase32 } from '../../src/nix/base32.ts';
import { tempNarwhal, type TempNarwhal } from '../helpers/narwhal-fixtures.ts';

/** A Narwhal served in-process on a free port, with a push token for cache `main`. */
export interface HostileServer {
  t: TempNarwhal;
  nw: Narwhal;
  server: Server;
  port: number;
  base: string;
  /** `Authorization` header of a token with push on `main`. */
  auth: Record<string, string>;
  /** Messages the server logged (5xx and internal errors end up here). */
  logged: string[];
  url(path: string): string;
  close(): Promise<void>;
}

export async function startHostileServer(
  options: { narwhal?: Partial<NarwhalOptions>; server?: Omit<ServerOptions, 'log'> } = {},
): Promise<HostileServer> {
  const t = await tempNarwhal(options.narwhal);
  const logged: string[] = [];
  const server = createNarwhalServer(t.nw, { ...options.server, log: (message) => logged.push(message) });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;
  const { secret } = await createToken(t.nw, { caches: ['main'], perms: ['push'] });
  return {
    t,
    nw: t.nw,
    server,
    port,
    base,
    auth: { Authorization: `Bearer ${secret}` },
    logged,
    url: (path) => `${base}/main/${path}`,
    async close() {
      server.closeAllConnections();
      server.close();
      await t.close();
    },
  };
}

/** The nix32 sha256 of bytes, as it appears in NAR URLs (no `sha256:` prefix). */
export function nix32Sha256(bytes: Uint8Array): string {
  return encodeNixBase32(createHash('sha256').update(bytes).digest());
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A client's refusal must be a 4xx with a short one-line text naming the problem: never 2xx, never
 * 5xx, never a dropped connection.
 */
export function assertClientError(
  answer: Answer,
  status: number | readonly number[],
  pattern: RegExp,
  label = '',
): void {
  const allowed = typeof status === 'number' ? [status] : status;
  const where = `${label} (got ${answer.status}: ${JSON.stringify(answer.body.slice(0, 200))})`;
  assert.ok(allowed.includes(answer.status), `status ${allowed.join('/')} expected ${where}`);
  assert.ok(answer.status >= 400 && answer.status < 500, `a 4xx expected ${where}`);
  if (answer.headers['content-type'] !== undefined)
    assert.match(String(answer.headers['content-type']), /^text\/plain/, where);
  assert.ok(answer.body.length > 0 && answer.body.length <= 300, `a short body expected ${where}`);
  assert.equal(answer.body.trimEnd().includes('\n'), false, `a one-line body expected ${where}`);
  assert.match(answer.body, pattern, where);
}

export async function answerOf(res: Response): Promise<Answer> {
  const headers: IncomingHttpHeaders = {};
  res.headers.forEach((value, key) => {
    headers[key] = value;
  });
  return { status: res.status, headers, body: await res.text() };
}

/**
 * Runs `attempt` and checks that the metadata (NARs, their chunk records, paths) did not change:
 * nothing a rejected request sent may be stored or referred to.
 */
export async function assertNothingStored<T>(nw: Narwhal, attempt: () => Promise<T>): Promise<T> {
  const before: StoreStats = await nw.meta.stats();
  const result = await attempt();
  assert.deepEqual(await nw.meta.stats(), before, 'a rejected request changed what is stored');
  return result;
}

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string | number>;
  /** A byte array goes with its Content-Length; pieces are chunked unless `headers` gives one. */
  body?: Uint8Array | AsyncIterable<Uint8Array>;
  /** Stop sending the body once an answer arrived, as curl does (default: send it all). */
  stopOnAnswer?: boolean;
}

/**
 * One HTTP/1.1 request on a fresh TCP connection, sent the way a naive client sends it: the whole
 * body (chunked unless `headers` gives a Content-Length), even when the answer arrives first, while
 * reading the answer. Resolves once the answer is read and the body sent; rejects when the
 * connection breaks on the way, which a client reports as "connection reset" or "broken pipe" in
 * place of the server's answer.
 */
export async function rawRequest(port: number, spec: RawRequest): Promise<Answer> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const headers = Object.fromEntries(Object.entries(spec.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
  headers.host ??= `127.0.0.1:${port}`;
  const chunked =
    spec.body !== undefined && headers['content-length'] === undefined && !(spec.body instanceof Uint8Array);
  if (spec.body instanceof Uint8Array) headers['content-length'] ??= String(spec.body.length);
  if (chunked) headers['transfer-encoding'] = 'chunked';
  const head = `${spec.method} ${spec.path} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

  return new Promise<Answer>((resolve, reject) => {
    let received = Buffer.alloc(0);
    let answer: Answer | undefined;
    let sent = false;
    let failed = false;
    const fail = (message: string): void => {
      if (failed) return;
      failed = true;
      socket.destroy();
      const stage = answer
        ? `after the answer ${answer.status} arrived, while sending the body`
        : 'before a complete answer';
      reject(new Error(`${message} (${stage})`));
    };
    const settle = (): void => {
      if (failed || !answer || (!sent && !spec.stopOnAnswer)) return;
      failed = true; // settled: what the connection does from here on is not observed
      socket.destroy();
      resolve(answer);
    };
    socket.on('data', (part: Buffer) => {
      if (answer) return;
      received = Buffer.concat([received, part]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = received.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0])?.[1] ?? 0);
      if (status === 100) {
        received = received.subarray(end + 4);
        return;
      }
      const answerHeaders: IncomingHttpHeaders = {};
      for (const line of lines.slice(1))
        answerHeaders[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
      // Answers to HEAD, 204 and 304 have no body whatever Content-Length says.
      const bodiless = spec.method === 'HEAD' || status === 204 || status === 304;
      const length = bodiless ? 0 : Number(answerHeaders['content-length'] ?? 0);
      if (received.length - end - 4 < length) return;
      answer = { status, headers: answerHeaders, body: received.subarray(end + 4, end + 4 + length).toString('utf8') };
      settle();
    });
    socket.on('error', (err) => fail(err.message));
    socket.on('close', () => fail('connection closed'));
    void (async () => {
      const write = async (bytes: Uint8Array | string): Promise<void> => {
        if (failed || (answer && spec.stopOnAnswer)) return;
        if (!socket.write(bytes)) {
          await new Promise<void>((done) => {
            const go = (): void => {
              socket.off('drain', go);
              socket.off('close', go);
              done();
            };
            socket.on('drain', go);
            socket.on('close', go);
          });
        }
      };
      await write(head);
      const body = spec.body;
      if (body instanceof Uint8Array) {
        await write(body);
      } else if (body) {
        for await (const part of body)
          await write(
            chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part,
          );
        if (chunked) await write('0\r\n\r\n');
      }
      // Everything was handed to the kernel; wait until it has been written out.
      await new Promise<void>((done) => (socket.writableNeedDrain ? socket.once('drain', () => done()) : done()));
      sent = true;
      settle();
    })().catch((err: Error) => fail(err.message));
  });
}

/**
 * Sends raw bytes over a TCP connection and collects everything the server sent until it closed
 * the connection. A reset at the end is part of what is being observed, so it ends the collection
 * like a close does.
 */
export async function rawExchange(port: number, bytes: Uint8Array | string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const parts: Buffer[] = [];
  socket.on('data', (part: Buffer) => parts.push(part));
  const closed = new Promise((done) => socket.on('close', done));
  socket.on('error', () => socket.destroy());
  socket.write(bytes);
  await closed;
  return Buffer.concat(parts).toString('latin1');
}

/** Yields `bytes` in pieces of `size`. */
export async function* pieces(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}
