/**
 * Two `narwhal serve --deltas` replicas sharing one PostgreSQL database and one S3 prefix (Ceph
 * RGW), both running the background pass (sketches, deltas, recompression) once uploads pause,
 * while versions of a binary are pushed through one and the other: afterwards no chunk is lost,
 * no delta is left half-done, and every NAR is served whole by both, its `.nar.zst` exactly as
 * long as its FileSize. The passes take turns by the recompression lease; two passes truly at
 * once (a lapsed lease) are tested in test/metadata/postgres-deltas.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeNarwhal, type Narwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { verifyStore } from '../../src/maintenance/verify.ts';
import { parseNarinfo, serializeNarinfo } from '../../src/nix/narinfo.ts';
import { parseStored } from '../../src/delta/stored-form.ts';
import { assertSameBytes } from '../helpers/bytes.ts';
import { unzstd } from '../helpers/zstd-cli.ts';
import { versionNar } from '../helpers/test-data.ts';
import { narHashOf } from '../helpers/narwhal-fixtures.ts';
import { freshDatabase } from '../metadata/postgres-server.ts';
import { startS3TestServer, TestBucket, type S3TestServer } from '../storage/s3-test-server.ts';
import { narwhal, startServer, tempDir, type RunningServer } from './harness.ts';

/** Pushes a NAR and its narinfo as a client would (`nix copy` with Compression none). */
async function push(server: RunningServer, token: string, hashPart: string, nar: Uint8Array): Promise<void> {
  const narHash = narHashOf(nar);
  const url = `nar/${narHash.slice('sha256:'.length)}.nar`;
  const auth = { Authorization: `Bearer ${token}` };
  const put = await fetch(`${server.url}/main/${url}`, { method: 'PUT', body: Buffer.from(nar), headers: auth });
  assert.equal(put.status, 204, await put.text());
  const narinfo = serializeNarinfo({
    storePath: `/nix/store/${hashPart}-tool`,
    url,
    compression: 'none',
    fileHash: narHash,
    fileSize: nar.length,
    narHash,
    narSize: nar.length,
    references: [],
    sigs: [],
  });
  const info = await fetch(`${server.url}/main/${hashPart}.narinfo`, { method: 'PUT', body: narinfo, headers: auth });
  assert.equal(info.status, 204, await info.text());
}

/** The path read back from `server` as a substituter does: `.nar.zst` as long as FileSize, decoding to the NAR. */
async function assertServed(server: RunningServer, hashPart: string, nar: Uint8Array): Promise<void> {
  const text = await (await fetch(`${server.url}/main/${hashPart}.narinfo`)).text();
  const info = parseNarinfo(text);
  assert.equal(info.narHash, narHashOf(nar), text);
  const body = await fetch(`${server.url}/main/${info.url}`);
  assert.equal(body.status, 200);
  const bytes = Buffer.from(await body.arrayBuffer());
  assert.equal(bytes.length, info.fileSize, `${info.url} is FileSize bytes`);
  assertSameBytes(info.compression === 'zstd' ? unzstd(bytes) : bytes, nar);
}

describe('two narwhal serve --deltas replicas on PostgreSQL and S3', () => {
  let work: { path: string; remove(): Promise<void> };
  let s3: S3TestServer;
  let bucket: TestBucket;
  let db: { url: string; drop(): Promise<void> };
  let replicas: RunningServer[] = [];
  let observer: Narwhal;
  let token: string;

  before(async () => {
    work = await tempDir('replica-deltas');
    s3 = await startS3TestServer();
    bucket = new TestBucket(s3.endpoint);
    await bucket.create();
    db = await freshDatabase();
    const storage = `${bucket.url(`replica-deltas-${randomBytes(4).toString('hex')}`)}&region=us-east-1`;
    const storeArgs = ['--database', db.url, '--storage', storage];
    const passArgs = ['--deltas', '--recompress-after', '1s', '--recompress-level', '3', '--gc-interval', '0'];
    replicas = await Promise.all(
      ['a', 'b'].map((name) => startServer(join(work.path, `data-${name}`), [...storeArgs, ...passArgs])),
    );
    const cliArgs = [...storeArgs, '--data-dir', join(work.path, 'data-cli')];
    token = (
      JSON.parse(await narwhal(['token', 'create', '--cache', 'main', '--perm', 'push', '--json', ...cliArgs])) as {
        secret: string;
      }
    ).secret;
    observer = await openNarwhal({ dataDir: join(work.path, 'data-observer'), database: db.url, storage });
  });

  after(async () => {
    try {
      await closeNarwhal(observer);
      await Promise.all(replicas.map((r) => r.stop()));
      await db?.drop();
      await bucket?.destroy();
      await s3?.stop();
    } finally {
      await work?.remove();
    }
  });

  /** Waits until the passes have nothing left: every chunk sketched and recompressed, no delta half-done. */
  async function passesSettled(): Promise<void> {
    const none = new Uint8Array(0);
    for (const started = Date.now(); Date.now() - started < 300_000; await sleep(500)) {
      const idle =
        (await observer.meta.chunksWithoutSketch(none, 1)).length === 0 &&
        (await observer.meta.chunksToRecompress(none, 1)).length === 0 &&
        (await observer.meta.pendingDeltas(none, 1)).length === 0;
      if (idle) return;
    }
    assert.fail('the background passes did not finish within 5 minutes');
  }

  test('versions pushed through both replicas become deltas; both serve every NAR whole', async (t) => {
    const paths: { hashPart: string; nar: Uint8Array }[] = [];
    for (const round of [
      [100, 200],
      [300, 400],
    ]) {
      for (const [i, seed] of round.entries()) {
        const path = {
          hashPart: `${'0123456789abcdfghijklmnpqrsvwxyz'[seed / 100]}`.repeat(32),
          nar: versionNar(seed, 150_000),
        };
        await push(replicas[i], token, path.hashPart, path.nar);
        paths.push(path);
      }
      await passesSettled();
    }
    const chunks = await observer.meta.listChunks(new Uint8Array(0), 100_000);
    const deltas = chunks.filter((c) => c.encoding === 'delta');
    assert.ok(deltas.length > 0, 'the replicas stored chunks as deltas');
    for (const chunk of chunks) {
      const stored = await observer.chunks.get(chunk.id);
      assert.equal(stored.length, chunk.storedSize, 'the record has the size of its object');
      assert.equal(parseStored(stored).kind === 'delta' ? 'delta' : 'zstd', chunk.encoding);
    }
    const passes = replicas.map(
      (r) =>
        r
          .output()
          .split('\n')
          .filter((line) => line.startsWith('narwhal: recompress: ')).length,
    );
    assert.ok(passes[0] + passes[1] >= 2, `the passes ran (${passes.join(' + ')} runs logged)`);
    t.diagnostic(
      `${deltas.length} of ${chunks.length} chunks stored as deltas; runs logged by A and B: ${passes.join(', ')}`,
    );
    const report = await verifyStore(observer);
    assert.deepEqual(
      [report.chunks.missing, report.chunks.corrupt, report.chunks.baseDamaged, report.nars.damaged],
      [0, 0, 0, 0],
    );
    for (const replica of replicas) for (const { hashPart, nar } of paths) await assertServed(replica, hashPart, nar);
  });
});
