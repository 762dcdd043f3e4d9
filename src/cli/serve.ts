import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { parseDurationOrZero } from '../tenancy/duration.ts';
import { scheduleGc } from '../maintenance/gc-scheduler.ts';
import { DEFAULT_RECOMPRESS_LEVEL } from '../maintenance/recompress.ts';
import { scheduleRecompression } from '../maintenance/recompress-scheduler.ts';
import { Server as HttpServer } from 'node:http';
import { createNarwhalServer } from '../server/server.ts';
import { createNarwhalTlsServer, loadTlsCredentials, type TlsCredentials } from '../server/tls-server.ts';
import { NarwhalError } from '../errors.ts';
import { prepareStreamChunking } from '../ingest/stream-chunker.ts';
import { hasWritePreparation } from '../storage/chunk-store-capabilities.ts';
import { parseByteSize, parseListen, parseZstdLevel, STORE_OPTIONS } from './options.ts';
import { isSupervisedServer, parseProcesses, superviseServers } from './serve-processes.ts';

export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      listen: { type: 'string', default: '127.0.0.1:5000' },
      processes: { type: 'string', default: '1' },
      'log-requests': { type: 'boolean', default: false },
      'gc-interval': { type: 'string', default: '6h' },
      'gc-grace': { type: 'string', default: '1h' },
      'max-nar-size': { type: 'string' },
      'recompress-level': { type: 'string', default: String(DEFAULT_RECOMPRESS_LEVEL) },
      'recompress-after': { type: 'string', default: '60s' },
      deltas: { type: 'boolean', default: false },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
    },
    strict: true,
  });
  const { host, port } = parseListen(values.listen);
  const gcInterval = parseDurationOrZero(values['gc-interval']);
  const gcGrace = parseDurationOrZero(values['gc-grace']);
  const recompressLevel = parseZstdLevel('--recompress-level', values['recompress-level'], true);
  const recompressAfter = parseDurationOrZero(values['recompress-after']);
  const maxNarSize =
    values['max-nar-size'] === undefined ? undefined : parseByteSize('--max-nar-size', values['max-nar-size']);
  const processes = parseProcesses(values.processes);
  const tls = tlsOptions(values['tls-cert'], values['tls-key']);
  const scheme = tls ? 'https' : 'http';
  const announce = (address: { address: string; port: number } | string | null): void => {
    const shown =
      typeof address === 'object' && address
        ? `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`
        : values.listen;
    process.stderr.write(
      `narwhal: serving ${values['data-dir']} on ${scheme}://${shown}/ (cache "main" at ${scheme}://${shown}/main)${processes > 1 ? ` with ${processes} processes` : ''}\n`,
    );
  };
  if (processes > 1 && !isSupervisedServer()) return superviseServers(processes, announce);
  const nw = await openNarwhal({
    dataDir: values['data-dir'],
    storage: values.storage,
    database: values.database,
    options: maxNarSize === undefined ? {} : { maxNarSize },
  });
  const log = (message: string): void => void process.stderr.write(`narwhal: ${message}\n`);
  // Scheduled before listening, so that a bad interval stops the start.
  const gc = gcInterval > 0 ? scheduleGc(nw, { intervalMs: gcInterval, graceMs: gcGrace, log }) : undefined;
  const recompression =
    recompressLevel > 0
      ? scheduleRecompression(nw, { level: recompressLevel, idleMs: recompressAfter, deltas: values.deltas, log })
      : undefined;
  if (hasWritePreparation(nw.chunks)) nw.chunks.prepare();
  prepareStreamChunking();
  const serverOptions = { logRequests: values['log-requests'] };
  const server = tls ? createNarwhalTlsServer(nw, tls, serverOptions) : createNarwhalServer(nw, serverOptions);
  server.listen(port, host);
  await once(server, 'listening');
  // A supervised process leaves the announcement to its supervisor, once all listen.
  if (!isSupervisedServer()) announce(server.address());

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`narwhal: ${signal}, shutting down\n`);
  // An HTTP/2 server's close also ends its idle sessions and connections.
  server.close();
  if (server instanceof HttpServer) server.closeIdleConnections();
  await gc?.stop();
  await recompression?.stop();
  await closeNarwhal(nw);
  // The channel to a supervisor would keep this process alive.
  if (isSupervisedServer()) process.disconnect?.();
  return 0;
}

/** `--tls-cert` and `--tls-key`, both or neither: read and checked before any process starts. */
function tlsOptions(cert: string | undefined, key: string | undefined): TlsCredentials | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined)
    throw new NarwhalError('bad-request', '--tls-cert and --tls-key go together');
  return loadTlsCredentials({ cert, key });
}
