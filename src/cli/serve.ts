import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { parseDurationOrZero } from '../tenancy/duration.ts';
import { scheduleGc } from '../maintenance/gc-scheduler.ts';
import { scheduleStorageSamples } from '../maintenance/storage-samples.ts';
import { DEFAULT_RECOMPRESS_LEVEL } from '../maintenance/recompress.ts';
import { scheduleRecompression } from '../maintenance/recompress-scheduler.ts';
import { createNarwhalServer } from '../server/server.ts';
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
      'stats-interval': { type: 'string', default: '10m' },
      'max-nar-size': { type: 'string' },
      'recompress-level': { type: 'string', default: String(DEFAULT_RECOMPRESS_LEVEL) },
      'recompress-after': { type: 'string', default: '60s' },
      deltas: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const { host, port } = parseListen(values.listen);
  const gcInterval = parseDurationOrZero(values['gc-interval']);
  const gcGrace = parseDurationOrZero(values['gc-grace']);
  const statsInterval = parseDurationOrZero(values['stats-interval']);
  const recompressLevel = parseZstdLevel('--recompress-level', values['recompress-level'], true);
  const recompressAfter = parseDurationOrZero(values['recompress-after']);
  const maxNarSize =
    values['max-nar-size'] === undefined ? undefined : parseByteSize('--max-nar-size', values['max-nar-size']);
  const processes = parseProcesses(values.processes);
  const announce = (address: { address: string; port: number } | string | null): void => {
    const shown =
      typeof address === 'object' && address
        ? `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`
        : values.listen;
    process.stderr.write(
      `narwhal: serving ${values['data-dir']} on http://${shown}/ (cache "main" at http://${shown}/main)${processes > 1 ? ` with ${processes} processes` : ''}\n`,
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
  const samples = statsInterval > 0 ? scheduleStorageSamples(nw, { intervalMs: statsInterval, log }) : undefined;
  if (hasWritePreparation(nw.chunks)) nw.chunks.prepare();
  prepareStreamChunking();
  const server = createNarwhalServer(nw, { logRequests: values['log-requests'] });
  server.listen(port, host);
  await once(server, 'listening');
  // A supervised process leaves the announcement to its supervisor, once all listen.
  if (!isSupervisedServer()) announce(server.address());

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`narwhal: ${signal}, shutting down\n`);
  server.close();
  server.closeIdleConnections();
  await gc?.stop();
  await samples?.stop();
  await recompression?.stop();
  await closeNarwhal(nw);
  // The channel to a supervisor would keep this process alive.
  if (isSupervisedServer()) process.disconnect?.();
  return 0;
}
