import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { parseDuration, parseDurationOrZero } from '../tenancy/duration.ts';
import { scheduleGc } from '../maintenance/gc-scheduler.ts';
import { scheduleStorageSamples } from '../maintenance/storage-samples.ts';
import { scheduleRecompression } from '../maintenance/recompress-scheduler.ts';
import { createMetricsServer, createNarwhalServer } from '../server/server.ts';
import { createNarwhalTlsServer, loadTlsCredentials, type TlsCredentials } from '../server/tls-server.ts';
import { NarwhalError } from '../errors.ts';
import { prepareStreamChunking } from '../ingest/stream-chunker.ts';
import { hasWritePreparation } from '../storage/chunk-store-capabilities.ts';
import { parseByteSize, parseListen, parseZstdLevel } from './options.ts';
import { isSupervisedServer, parseProcesses, superviseServers } from './serve-processes.ts';
import { SERVE_OPTIONS } from './serve-options.ts';
import { formatLogLine, parseLogFormat } from '../runtime/log-lines.ts';
import { answerSupervisor, offerToSupervisor } from '../metrics/cluster-metrics.ts';
import { exposePullCounters } from '../upstream/pull-counters.ts';
import { Server as HttpServer } from 'node:http';
import type { Http2SecureServer } from 'node:http2';

export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: SERVE_OPTIONS, strict: true, allowNegative: true });
  const { host, port } = parseListen(values.listen);
  const metricsListen = values['metrics-listen'] === undefined ? undefined : parseListen(values['metrics-listen']);
  const logFormat = parseLogFormat(values['log-format']);
  const log = (message: string): void =>
    void process.stderr.write(
      `${logFormat === 'json' ? formatLogLine('json', { level: message.startsWith('error') ? 'error' : 'info', msg: message }) : `narwhal: ${message}`}\n`,
    );
  const gcInterval = parseDurationOrZero(values['gc-interval']);
  const gcGrace = parseDurationOrZero(values['gc-grace']);
  const statsInterval = parseDurationOrZero(values['stats-interval']);
  const recompressLevel = parseZstdLevel('--recompress-level', values['recompress-level'], true);
  const recompressAfter = parseDurationOrZero(values['recompress-after']);
  const maxNarSize =
    values['max-nar-size'] === undefined ? undefined : parseByteSize('--max-nar-size', values['max-nar-size']);
  const processes = parseProcesses(values.processes);
  const tls = tlsOptions(values['tls-cert'], values['tls-key']);
  const scheme = tls ? 'https' : 'http';
  type Address = { address: string; port: number } | string | null | undefined;
  const shownAddress = (address: Address, given: string | undefined): string =>
    typeof address === 'object' && address
      ? `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`
      : (given ?? '');
  const announce = (address: Address, metricsAddress?: Address): void => {
    const shown = shownAddress(address, values.listen);
    log(
      `serving ${values['data-dir']} on ${scheme}://${shown}/ (cache "main" at ${scheme}://${shown}/main)${processes > 1 ? ` with ${processes} processes` : ''}`,
    );
    if (values['metrics-listen'] !== undefined)
      log(`metrics at http://${shownAddress(metricsAddress, values['metrics-listen'])}/metrics only`);
  };
  if (processes > 1 && !isSupervisedServer()) return superviseServers(processes, announce);
  answerSupervisor();
  const nw = await openNarwhal({
    dataDir: values['data-dir'],
    storage: values.storage,
    database: values.database,
    options: {
      ...(maxNarSize === undefined ? {} : { maxNarSize }),
      upstreamTimeoutMs: parseDuration(values['upstream-timeout']),
      upstreamNegativeMs: parseDurationOrZero(values['upstream-negative-ttl']),
      netrcFile: values['netrc-file'],
    },
  });
  // Scheduled before listening, so that a bad interval stops the start.
  const gc = gcInterval > 0 ? scheduleGc(nw, { intervalMs: gcInterval, graceMs: gcGrace, log }) : undefined;
  const recompression =
    recompressLevel > 0
      ? scheduleRecompression(nw, { level: recompressLevel, idleMs: recompressAfter, deltas: values.deltas, log })
      : undefined;
  const samples = statsInterval > 0 ? scheduleStorageSamples(nw, { intervalMs: statsInterval, log }) : undefined;
  if (hasWritePreparation(nw.chunks)) nw.chunks.prepare();
  prepareStreamChunking();
  nw.metrics.addProcessMetrics();
  exposePullCounters(nw);
  offerToSupervisor(nw.metrics);
  const metricsAccess = { token: values['metrics-token'] };
  const serverOptions = {
    logRequests: values['log-requests'],
    logFormat,
    log: (line: string) => void process.stderr.write(`${line}\n`),
  };
  const mainOptions = { ...serverOptions, metrics: metricsListen ? (false as const) : metricsAccess };
  const server = tls ? createNarwhalTlsServer(nw, tls, mainOptions) : createNarwhalServer(nw, mainOptions);
  const metricsServer = metricsListen && createMetricsServer(nw, { ...serverOptions, metrics: metricsAccess });
  await listen(server, port, host);
  if (metricsServer && metricsListen) await listen(metricsServer, metricsListen.port, metricsListen.host);
  // A supervised process leaves the announcement to its supervisor, once all listen.
  if (!isSupervisedServer()) announce(server.address(), metricsServer ? metricsServer.address() : undefined);

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  log(`${signal}, shutting down`);
  // An HTTP/2 server's close also ends its idle sessions and connections.
  for (const listener of [server, metricsServer]) {
    listener?.close();
    if (listener instanceof HttpServer) listener.closeIdleConnections();
  }
  await gc?.stop();
  await samples?.stop();
  await recompression?.stop();
  await closeNarwhal(nw);
  // The channel to a supervisor would keep this process alive.
  if (isSupervisedServer()) process.disconnect?.();
  return 0;
}

async function listen(server: HttpServer | Http2SecureServer, port: number, host: string): Promise<void> {
  server.listen(port, host);
  await once(server, 'listening');
}

/** `--tls-cert` and `--tls-key`, both or neither: read and checked before any process starts. */
function tlsOptions(cert: string | undefined, key: string | undefined): TlsCredentials | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined)
    throw new NarwhalError('bad-request', '--tls-cert and --tls-key go together');
  return loadTlsCredentials({ cert, key });
}
