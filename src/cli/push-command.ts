import { parseArgs } from 'node:util';
import { cacheAndToken } from '../client/credentials.ts';
import { type PushOptions, type PushProgress, pushPaths, readSigningKey } from '../client/push.ts';
import { watchStore } from '../client/store-watch.ts';
import { NarwhalError } from '../errors.ts';
import { printJsonOr } from './output.ts';

/** `narwhal push`: store paths and their closure into a cache, sending only what it lacks (client/push.ts). */
export async function pushCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      cache: { type: 'string' },
      token: { type: 'string' },
      'signing-key': { type: 'string' },
      jobs: { type: 'string', default: '4' },
      json: { type: 'boolean', default: false },
      'watch-store': { type: 'boolean', default: false },
      deltas: { type: 'boolean', default: true },
    },
    allowPositionals: true,
    allowNegative: true,
    strict: true,
  });
  if (values.cache === undefined)
    throw new NarwhalError('bad-request', '--cache is required: a URL (<server>/<cache>), SERVER/CACHE or CACHE');
  const watch = values['watch-store'];
  if (watch === positionals.length > 0) {
    throw new NarwhalError('bad-request', 'name the store paths to push, or --watch-store (not both)');
  }
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new NarwhalError('bad-request', '--jobs is 1 to 64');
  const options = {
    ...(await cacheAndToken(values.cache, values.token)),
    signingKey: await readSigningKey(values['signing-key']),
    jobs,
    deltas: values.deltas,
  };
  if (watch) return watchCommand(options, values.json);
  const started = performance.now();
  const bar = process.stderr.isTTY && !values.json ? progressLine : undefined;
  const result = await pushPaths(positionals, { ...options, onProgress: bar });
  if (bar) process.stderr.write('\n');
  const seconds = (performance.now() - started) / 1000;
  printJsonOr(values.json, { ...result, seconds }, () => `${describe(result)} in ${seconds.toFixed(1)} s\n`);
  return 0;
}

/** Pushes new store paths until SIGINT or SIGTERM, a line (or a JSON object) per round. */
async function watchCommand(options: PushOptions, json: boolean): Promise<number> {
  const stop = new AbortController();
  const abort = (): void => stop.abort();
  process.once('SIGINT', abort).once('SIGTERM', abort);
  process.stderr.write(`narwhal push: watching the Nix store, pushing new paths to ${options.cacheUrl}\n`);
  await watchStore({
    ...options,
    signal: stop.signal,
    onRound: ({ paths, result, error }) => {
      if (json) process.stdout.write(`${JSON.stringify({ paths, result, error: error && String(error) })}\n`);
      else if (result) process.stderr.write(`narwhal push: ${describe(result)}\n`);
      else process.stderr.write(`narwhal push: ${paths.length} new paths failed, trying again: ${String(error)}\n`);
    },
  });
  return 0;
}

let lastDrawn = 0;

function progressLine(p: PushProgress): void {
  const now = performance.now();
  if (now - lastDrawn < 100 && p.pushed + p.cached < p.paths) return;
  lastDrawn = now;
  process.stderr.write(`\r\x1b[K${describe(p)}`);
}

function describe(p: PushProgress): string {
  const deduplicated =
    p.chunks > 0 ? ` (${(100 * (1 - p.chunksSent / p.chunks)).toFixed(0)}% of chunks already there)` : '';
  return `pushed ${p.pushed} of ${p.paths - p.cached} paths (${p.cached} already cached), sent ${(p.bytesSent / 1e6).toFixed(1)} MB for ${(p.narBytes / 1e6).toFixed(1)} MB of NAR${deduplicated}`;
}
