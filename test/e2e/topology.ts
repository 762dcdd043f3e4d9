/**
 * The deployments the end-to-end suites run against, behind one interface: clients talk to
 * `url`, pushes land on `writer` and reads on `reader`, and `narwhal()` runs the CLI on the same
 * stores. With one server the three are the same process; with two replicas `url` is a front
 * that sends every write to replica A and every read to replica B, as a load balancer might, so
 * each read proves that B sees what was pushed through A. One URL for both matters: Nix keys the
 * narinfos it remembers by cache URL, and a pushing machine must read back what it wrote.
 */
import { createServer, request, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { freshDatabase } from '../metadata/postgres-server.ts';
import { startS3TestServer, TestBucket } from '../storage/s3-test-server.ts';
import { narwhal, startServer, type RunningServer } from './harness.ts';

export interface Topology {
  /** The cache server URL clients use (append `/main` for the cache). */
  readonly url: string;
  /** The server whose request log shows the pushes (PUT, POST, DELETE). */
  readonly writer: RunningServer;
  /** The server whose request log shows the reads (GET, HEAD). */
  readonly reader: RunningServer;
  /** Runs the real `narwhal` CLI on this topology's stores, beside the running servers. */
  narwhal(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface SharedTopology extends Topology {
  /** Replica A (the writer) and replica B (the reader). */
  readonly replicas: readonly [RunningServer, RunningServer];
  /** `--database URL --storage URL`: the options that reach the shared stores. */
  readonly storeArgs: readonly string[];
  readonly bucket: TestBucket;
  /** The key prefix in `bucket` under which the chunks live. */
  readonly prefix: string;
}

/** One `narwhal serve` on the embedded default: SQLite and a chunk directory under its data dir. */
export async function startEmbedded(work: string): Promise<Topology> {
  const server = await startServer(join(work, 'data'));
  return {
    url: server.url,
    writer: server,
    reader: server,
    narwhal: (args) => narwhal([...args, '--data-dir', server.dataDir]),
    stop: () => server.stop(),
  };
}

/**
 * Two `narwhal serve` replicas sharing a fresh PostgreSQL database and a fresh S3 bucket (from
 * the servers scripts/test.sh starts, or servers started here: never skipped, a failure to get
 * one fails the suite saying why), behind a front that sends writes to A and reads to B.
 */
export async function startSharedReplicas(work: string): Promise<SharedTopology> {
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    // Newest first; the rest still run when one fails, and the first failure is reported.
    let failure: unknown;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((err: unknown) => (failure ??= err));
    if (failure) throw failure;
  };
  try {
    const s3 = await startS3TestServer();
    cleanups.push(() => s3.stop());
    const bucket = new TestBucket(s3.endpoint);
    await bucket.create();
    cleanups.push(() => bucket.destroy());
    const db = await freshDatabase();
    cleanups.push(() => db.drop());
    const prefix = `replicas-${randomBytes(4).toString('hex')}`;
    const storeArgs = ['--database', db.url, '--storage', `${bucket.url(prefix)}&region=us-east-1`];
    // No background recompression while the suite runs: replica B takes no uploads, so it would
    // start the pass 60 s after it started, racing the test that runs `narwhal recompress`.
    const quiet = { 'recompress-after': '1h' };

    // Replica B reads the same settings from a config file, as a deployment would keep them.
    const config = join(work, 'narwhal-b.json');
    await writeFile(
      config,
      JSON.stringify({ database: storeArgs[1], storage: storeArgs[3], 'gc-interval': '0', ...quiet }),
      { mode: 0o600 },
    );
    // Both start at once: schema migration and the creation of `main` must not race.
    const starting = [
      startServer(join(work, 'data-a'), [...storeArgs, '--recompress-after', quiet['recompress-after']]),
      startServer(join(work, 'data-b'), ['--config', config]),
    ];
    // Registered before awaiting, so a replica that started is stopped even if the other did not.
    for (const replica of starting)
      cleanups.push(() =>
        replica.then(
          (r) => r.stop(),
          () => undefined,
        ),
      );
    const [a, b] = await Promise.all(starting);
    const front = await startFront(a, b);
    cleanups.push(async () => {
      const closed = new Promise((resolve) => front.server.close(resolve));
      front.server.closeAllConnections();
      await closed;
    });

    return {
      url: front.url,
      writer: a,
      reader: b,
      replicas: [a, b],
      storeArgs,
      bucket,
      prefix,
      // The CLI runs as a third machine: with --database and --storage its data dir holds nothing.
      narwhal: (args) => narwhal([...args, ...storeArgs, '--data-dir', join(work, 'data-cli')]),
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined); // the start failure is the one worth reporting
    throw err;
  }
}

/** An HTTP front on a free port: GET and HEAD go to `reader`, every other method to `writer`. */
async function startFront(writer: RunningServer, reader: RunningServer): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const target = new URL(req.method === 'GET' || req.method === 'HEAD' ? reader.url : writer.url);
    const headers = { ...req.headers };
    delete headers.expect; // this front already answered 100-continue to the client
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode!, upstreamRes.headers);
        pipeline(upstreamRes, res, () => undefined);
      },
    );
    upstream.on('error', (err) => {
      if (res.headersSent) res.destroy(err);
      else res.writeHead(502).end(`front: ${err.message}\n`);
    });
    pipeline(req, upstream, () => undefined); // a failure surfaces as the upstream error above
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${address.port}` };
}
