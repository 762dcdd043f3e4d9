/**
 * Idle and stalled connections to the TLS server (`serve --tls-cert --tls-key`): dropped over
 * HTTP/1.1 and over HTTP/2 alike, as the plain server drops them (connections.test.ts), while the
 * server goes on answering.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as connectHttp2 } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import type { Http2SecureServer } from 'node:http2';
import { createNarwhalTlsServer, loadTlsCredentials } from '../../src/server/tls-server.ts';
import { makeTestCertificates } from '../helpers/tls-certs.ts';
import { tempNarwhal, type TempNarwhal } from '../helpers/narwhal-fixtures.ts';

/** How long the server may take past its 1 s timeouts before the test calls it a failure. */
const PATIENCE_MS = 10_000;

describe('hostile connections over TLS', () => {
  let t: TempNarwhal;
  let dir: string;
  let ca: Buffer;
  let server: Http2SecureServer;
  let port: number;

  before(async () => {
    t = await tempNarwhal();
    dir = await mkdtemp(join(tmpdir(), 'narwhal-tls-hostile-'));
    const certs = await makeTestCertificates(dir);
    ca = await readFile(certs.ca);
    server = createNarwhalTlsServer(t.nw, loadTlsCredentials(certs), {
      log: () => undefined,
      idleTimeoutMs: 1000,
      headersTimeoutMs: 1000,
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.close();
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Resolves true when `emitter` emits `event` within PATIENCE_MS. */
  const within = (emitter: NodeJS.EventEmitter, event: string): Promise<boolean> =>
    Promise.race([
      once(emitter, event).then(() => true),
      new Promise<boolean>((resolve) => setTimeout(resolve, PATIENCE_MS, false).unref()),
    ]);

  /** A full HTTP/2 request on a fresh session: the status of nix-cache-info. */
  const cacheInfoStatus = async (): Promise<number> => {
    const session = connectHttp2(`https://127.0.0.1:${port}`, { ca });
    try {
      const stream = session.request({ ':path': '/main/nix-cache-info' });
      const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
      stream.resume();
      await once(stream, 'end');
      return Number(headers[':status']);
    } finally {
      session.close();
    }
  };

  test('an HTTP/1.1 client that stops halfway through its request line is dropped', async () => {
    const socket = connectTls({ host: '127.0.0.1', port, ca, ALPNProtocols: ['http/1.1'] });
    await once(socket, 'secureConnect');
    assert.equal(socket.alpnProtocol, 'http/1.1');
    socket.write('GET /main/nix-cache-');
    socket.on('error', () => undefined);
    assert.ok(await within(socket, 'close'), `the connection stayed open for ${PATIENCE_MS} ms`);
    assert.equal(await cacheInfoStatus(), 200);
  });

  test('an HTTP/2 session on which nothing happens is closed', async () => {
    const session = connectHttp2(`https://127.0.0.1:${port}`, { ca });
    session.on('error', () => undefined);
    await once(session, 'connect');
    assert.equal(session.alpnProtocol, 'h2');
    assert.ok(await within(session, 'close'), `the session stayed open for ${PATIENCE_MS} ms`);
    assert.equal(await cacheInfoStatus(), 200);
  });

  test('a client that does not speak TLS is dropped', async () => {
    const { connect } = await import('node:net');
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write('not a TLS hello');
    assert.ok(await within(socket, 'close'), `the connection stayed open for ${PATIENCE_MS} ms`);
  });
});
