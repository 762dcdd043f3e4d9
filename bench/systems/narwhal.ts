/**
 * Narwhal as a user runs it: `narwhal serve` on a loopback port, `narwhal stats --json` for its
 * own storage figures. Black box: nothing here imports the server's code.
 */
import { join } from 'node:path';
import { peakRss, run, startDaemon, type Daemon } from '../exec.ts';
import { REPO } from '../sources.ts';

export interface NarwhalServer {
  /** Base URL of the cache `main`, without trailing slash. */
  cacheUrl: string;
  dataDir: string;
  pid: number;
  peakRss(): Promise<number>;
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

function narwhalEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${join(REPO, 'node_modules/.bin')}:${process.env.PATH ?? ''}` };
}

export async function startNarwhal(dataDir: string): Promise<NarwhalServer> {
  const { daemon, match } = await startDaemon(
    process.execPath,
    [join(REPO, 'bin/narwhal.js'), 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'],
    /on (http:\/\/127\.0\.0\.1:\d+)\//,
    { env: narwhalEnv() },
  );
  return wrap(daemon, `${match[1]}/main`, dataDir);
}

function wrap(daemon: Daemon, cacheUrl: string, dataDir: string): NarwhalServer {
  return { cacheUrl, dataDir, pid: daemon.pid, peakRss: () => peakRss(daemon.pid), stop: () => daemon.stop() };
}

export async function narwhalStats(dataDir: string): Promise<NarwhalStats> {
  const { stdout } = await run(process.execPath, [join(REPO, 'bin/narwhal.js'), 'stats', '--data-dir', dataDir, '--json'], { env: narwhalEnv() });
  return JSON.parse(stdout) as NarwhalStats;
}
