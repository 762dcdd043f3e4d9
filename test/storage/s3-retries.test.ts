/**
 * Faults injected by a fake S3 server (node:http on port 0), not by a mocked client: the real SDK
 * with our configuration retries transient failures and surfaces permanent ones as errors.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isNarwhalError } from '../../src/errors.ts';
import { S3_MAX_ATTEMPTS, S3ChunkStore } from '../../src/storage/s3-chunk-store.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { chunk } from './chunk-fixtures.ts';

/** What the fake does with one request: answer normally, or a fault. */
type Fault = 'ok' | 'reset' | 'truncate' | { status: number; code: string };

class FakeS3 {
  readonly objects = new Map<string, Buffer>();
  readonly seen: string[] = [];
  /** Decides each request's fate from its method and how many of that method came before. */
  plan: (method: string, nth: number) => Fault = () => 'ok';
  readonly server: Server = createServer((req, res) => this.#handle(req, res));

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(method: string): number {
    return this.seen.filter((m) => m === method).length;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const body: Buffer[] = [];
    req.on('data', (piece: Buffer) => body.push(piece));
    req.on('end', () => {
      const method = req.method!;
      const fault = this.plan(method, this.count(method));
      this.seen.push(method);
      if (fault === 'reset') {
        req.socket.destroy();
        return;
      }
      if (typeof fault === 'object') {
        const xml = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code><Message>injected</Message><RequestId>r</RequestId></Error>`;
        res.writeHead(fault.status, {
          'Content-Type': 'application/xml',
          'Content-Length': method === 'HEAD' ? 0 : Buffer.byteLength(xml),
        });
        res.end(method === 'HEAD' ? undefined : xml);
        return;
      }
      const key = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
      const object = this.objects.get(key);
      if (method === 'PUT') {
        this.objects.set(key, Buffer.concat(body));
        res.writeHead(200, { ETag: '"e"', 'Content-Length': 0 }).end();
      } else if ((method === 'GET' || method === 'HEAD') && object) {
        res.writeHead(200, {
          'Content-Length': object.length,
          'Content-Type': 'application/octet-stream',
          ETag: '"e"',
          'Last-Modified': new Date().toUTCString(),
        });
        if (method === 'HEAD') res.end();
        else if (fault === 'truncate') {
          res.write(object.subarray(0, object.length >> 1), () => res.socket?.destroy());
        } else res.end(object);
      } else if (method === 'GET' || method === 'HEAD') {
        const xml =
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>';
        res.writeHead(404, {
          'Content-Type': 'application/xml',
          'Content-Length': method === 'HEAD' ? 0 : Buffer.byteLength(xml),
        });
        res.end(method === 'HEAD' ? undefined : xml);
      } else {
        res.writeHead(405, { 'Content-Length': 0 }).end();
      }
    });
  }
}

const fake = new FakeS3();
let store: S3ChunkStore;

before(async () => {
  // The fake checks no signature, but the SDK must have credentials to sign with.
  process.env.AWS_ACCESS_KEY_ID ??= 'fake-access';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'fake-secret';
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  store = new S3ChunkStore({
    kind: 's3',
    bucket: 'bucket',
    prefix: 'p',
    endpoint: fake.endpoint,
    region: 'us-east-1',
    pathStyle: true,
  });
});

after(async () => {
  await store.close();
  fake.server.closeAllConnections();
  await new Promise((resolve) => fake.server.close(resolve));
});

beforeEach(() => {
  fake.seen.length = 0;
  fake.plan = () => 'ok';
});

describe('S3ChunkStore retries', () => {
  test('path-style requests go to /bucket/prefix/4hex/id.cacnk', async () => {
    const c = chunk(100);
    await store.put(c.id, c.stored);
    assert.deepEqual(
      [...fake.objects.keys()].filter((k) => k.includes(Buffer.from(c.id).toString('hex'))),
      [`/bucket/${store.key(c.id)}`],
    );
  });

  test('a PUT answered 503 SlowDown twice is retried and succeeds', async () => {
    fake.plan = (method, nth) => (method === 'PUT' && nth < 2 ? { status: 503, code: 'SlowDown' } : 'ok');
    const c = chunk(1000);
    await store.put(c.id, c.stored);
    assert.equal(fake.count('PUT'), 3);
    assertSameBytes(await store.get(c.id), c.stored);
  });

  test('a GET answered 500 InternalError twice is retried and succeeds', async () => {
    const c = chunk(1000);
    await store.put(c.id, c.stored);
    fake.plan = (method, nth) => (method === 'GET' && nth < 2 ? { status: 500, code: 'InternalError' } : 'ok');
    assertSameBytes(await store.get(c.id), c.stored);
    assert.equal(fake.count('GET'), 3);
  });

  test('a reset connection is retried', async () => {
    const c = chunk(1000);
    fake.plan = (_method, nth) => (nth === 0 ? 'reset' : 'ok');
    await store.put(c.id, c.stored);
    assert.equal(await store.storedSize(c.id), c.stored.length);
    assertSameBytes(await store.get(c.id), c.stored);
    assert.deepEqual([fake.count('PUT'), fake.count('HEAD'), fake.count('GET')], [2, 2, 2]);
  });

  test('a GET body cut short is read again', async () => {
    const c = chunk(100_000);
    await store.put(c.id, c.stored);
    fake.plan = (method, nth) => (method === 'GET' && nth === 0 ? 'truncate' : 'ok');
    assertSameBytes(await store.get(c.id), c.stored);
    assert.equal(fake.count('GET'), 2);
  });

  test('a GET body always cut short fails as unavailable after a bounded number of reads', async () => {
    const c = chunk(100_000);
    await store.put(c.id, c.stored);
    fake.plan = (method) => (method === 'GET' ? 'truncate' : 'ok');
    await assert.rejects(
      store.get(c.id),
      (err: unknown) => isNarwhalError(err, 'unavailable') && /GetObject/.test(err.message),
    );
    assert.equal(fake.count('GET'), 3);
  });

  test(`a permanent 503 surfaces as unavailable after ${S3_MAX_ATTEMPTS} attempts`, async () => {
    fake.plan = (method) => (method === 'PUT' ? { status: 503, code: 'ServiceUnavailable' } : 'ok');
    const c = chunk(100);
    await assert.rejects(store.put(c.id, c.stored), (err: unknown) => {
      assert.ok(isNarwhalError(err, 'unavailable'));
      assert.equal(err.message, 'S3 PutObject failed: ServiceUnavailable (HTTP 503)');
      return true;
    });
    assert.equal(fake.count('PUT'), S3_MAX_ATTEMPTS);
  });

  test('a refusal (403 AccessDenied) is not retried', async () => {
    fake.plan = () => ({ status: 403, code: 'AccessDenied' });
    const c = chunk(100);
    await assert.rejects(
      store.put(c.id, c.stored),
      (err: unknown) => isNarwhalError(err, 'unavailable') && /AccessDenied \(HTTP 403\)/.test(err.message),
    );
    assert.equal(fake.count('PUT'), 1);
  });

  test('a missing key is chunk-missing to GET and undefined to HEAD, without retries', async () => {
    const c = chunk(100);
    await assert.rejects(store.get(c.id), (err: unknown) => isNarwhalError(err, 'chunk-missing'));
    assert.equal(await store.storedSize(c.id), undefined);
    assert.deepEqual([fake.count('GET'), fake.count('HEAD')], [1, 1]);
  });

  test('a full store (QuotaExceeded) is storage-full', async () => {
    fake.plan = () => ({ status: 403, code: 'QuotaExceeded' });
    const c = chunk(100);
    await assert.rejects(store.put(c.id, c.stored), (err: unknown) => isNarwhalError(err, 'storage-full'));
  });

  test('a refused connection surfaces as unavailable, naming no address', async () => {
    const down = new S3ChunkStore(
      {
        kind: 's3',
        bucket: 'bucket',
        prefix: '',
        endpoint: 'http://127.0.0.1:1',
        region: 'us-east-1',
        pathStyle: true,
      },
      { maxAttempts: 2 },
    );
    try {
      await assert.rejects(down.get(chunk(10).id), (err: unknown) => {
        assert.ok(isNarwhalError(err, 'unavailable'));
        assert.equal(err.message, 'S3 GetObject failed: ECONNREFUSED');
        return true;
      });
    } finally {
      await down.close();
    }
  });
});
