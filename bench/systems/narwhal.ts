/**
 * Narwhal as a user runs it: `narwhal serve` on a loopback port, `narwhal stats --json` for its
 * own storage figures. Black box: nothing here imports the server's code.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { peakRss, run, startDaemon, type Daemon } from '../exec.ts';
import { REPO } from '../sources.ts';

export interface NarwhalServer {
  /** Base URL of the cache `main`, without trailing slash. */
  cacheUrl: string;
  /** Secret of a token with push permission on `main` (reads of the public `main` need none). */
  token: string;
  dataDir: string;
  pid: number;
  peakRss(): Promise<number>;
  /** What the server wrote to stderr (with BENCH_NARWHAL_ARGS=--log-requests, every request). */
  output(): string;
  stop(): Promise<void>;
}

export interface NarwhalStats {
  paths: number;
  nars: number;
  narBytes: number;
  chunks: number;
  chunkBytes: number;
  storedBytes: number;
}

/** The command `npx narwhal` runs: the package's bin, whose shebang picks Node 24 from PATH and sets its flags. */
export const NARWHAL_BIN = join(REPO, 'node_modules/.bin/narwhal');

export function narwhalEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${join(REPO, 'node_modules/.bin')}:${process.env.PATH ?? ''}` };
}

/** Extra `serve` arguments for debugging a run, e.g. BENCH_NARWHAL_ARGS=--log-requests (slows lookups). */
const EXTRA_ARGS = (process.env.BENCH_NARWHAL_ARGS ?? '').split(' ').filter((a) => a !== '');

/**
 * Background recompression is off (`--recompress-level 0`): it would run when a measurement
 * pauses and disturb the next one. The push phase runs `narwhal recompress` itself, timed,
 * where the server would do it between pushes.
 */
export async function startNarwhal(dataDir: string, args: string[] = [], bin = NARWHAL_BIN): Promise<NarwhalServer> {
  const { daemon, match } = await startDaemon(
    bin,
    ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--recompress-level', '0', ...args, ...EXTRA_ARGS],
    /on (https?:\/\/127\.0\.0\.1:\d+)\//,
    { env: narwhalEnv() },
  );
  try {
    const { stdout } = await run(
      NARWHAL_BIN,
      ['token', 'create', '--data-dir', dataDir, '--cache', 'main', '--perm', 'push', '--name', 'bench', '--json'],
      { env: narwhalEnv() },
    );
    const token = (JSON.parse(stdout) as { secret: string }).secret;
    return wrap(daemon, `${match[1]}/main`, dataDir, token);
  } catch (err) {
    await daemon.stop();
    throw err;
  }
}

function wrap(daemon: Daemon, cacheUrl: string, dataDir: string, token: string): NarwhalServer {
  return {
    cacheUrl,
    token,
    dataDir,
    pid: daemon.pid,
    peakRss: () => peakRss(daemon.pid),
    output: () => daemon.output(),
    stop: () => daemon.stop(),
  };
}

/** Nix client settings that send the push token (Nix reads credentials from a netrc file). */
export async function pushClientConfig(server: NarwhalServer, clientHome: string): Promise<string[]> {
  await mkdir(clientHome, { recursive: true });
  const netrc = join(clientHome, 'netrc');
  await writeFile(netrc, `machine ${new URL(server.cacheUrl).hostname} login narwhal password ${server.token}\n`, {
    mode: 0o600,
  });
  return [`netrc-file = ${netrc}`];
}

export async function narwhalStats(dataDir: string): Promise<NarwhalStats> {
  const { stdout } = await run(NARWHAL_BIN, ['stats', '--data-dir', dataDir, '--json'], { env: narwhalEnv() });
  return JSON.parse(stdout) as NarwhalStats;
}

/** `narwhal recompress` on the data dir, as the server does when idle; returns its wall time in seconds. */
export async function recompress(dataDir: string, bin = NARWHAL_BIN): Promise<number> {
  const { seconds } = await run(bin, ['recompress', '--data-dir', dataDir, '--json'], { env: narwhalEnv() });
  return seconds;
}

export interface DeltaPassRun {
  seconds: number;
  /** User + system CPU seconds of the process, all its threads included. */
  cpuSeconds: number;
  peakRssBytes: number;
  /** `recompress --json`'s report. */
  report: { sketched: number; deltas: number; bytesBefore: number; bytesAfter: number };
}

/**
 * `narwhal recompress --deltas` on a data dir already recompressed: the sketch backfill and the
 * delta pass, timed by GNU time for its CPU seconds and peak RSS.
 */
export async function deltaPass(dataDir: string, timeFile: string, bin = NARWHAL_BIN): Promise<DeltaPassRun> {
  const { stdout, seconds } = await run(
    '/usr/bin/time',
    ['-o', timeFile, '-f', '%U %S %M', bin, 'recompress', '--deltas', '--data-dir', dataDir, '--json'],
    { env: narwhalEnv() },
  );
  const [user, system, maxRssKiB] = (await readFile(timeFile, 'utf8'))
    .trim()
    .split('\n')
    .at(-1)!
    .split(' ')
    .map(Number);
  return {
    seconds,
    cpuSeconds: user + system,
    peakRssBytes: maxRssKiB * 1024,
    report: JSON.parse(stdout) as DeltaPassRun['report'],
  };
}

export interface SubstituterDaemon {
  /** The substituter's URL, for Nix's `--from`. */
  url: string;
  /** Its `GET /_narwhal/stats` (what assembling took). */
  stats(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** `narwhal substituter` for the cache at `cacheUrl`, on a machine whose Nix store is under `storeRoot`. */
export async function startSubstituter(
  cacheUrl: string,
  storeRoot: string,
  cacheDir: string,
  env: NodeJS.ProcessEnv,
  bin = NARWHAL_BIN,
): Promise<SubstituterDaemon> {
  const { daemon, match } = await startDaemon(
    bin,
    ['substituter', '--cache', cacheUrl, '--listen', '127.0.0.1:0', '--store', storeRoot, '--cache-dir', cacheDir],
    /serving (http:\/\/127\.0\.0\.1:\d+)\//,
    { env: { ...env, PATH: narwhalEnv().PATH } },
  );
  return {
    url: match[1],
    stats: async () => (await (await fetch(`${match[1]}/_narwhal/stats`)).json()) as Record<string, number>,
    stop: () => daemon.stop(),
  };
}

/** `narwhal push` of `paths` (and their closure) to `cacheUrl`; its wall time and `--json` summary. */
export async function narwhalPush(
  cacheUrl: string,
  token: string,
  paths: string[],
  env: NodeJS.ProcessEnv,
  bin = NARWHAL_BIN,
): Promise<{ seconds: number; bytesSent: number }> {
  const { stdout, seconds } = await run(bin, ['push', '--cache', cacheUrl, '--json', ...paths], {
    env: { ...env, PATH: narwhalEnv().PATH, NARWHAL_TOKEN: token },
  });
  return { seconds, bytesSent: (JSON.parse(stdout) as { bytesSent: number }).bytesSent };
}
