/**
 * Figure 4 (lookups): narinfo requests per second, Narwhal against nginx serving the static cache,
 * the same keys at the same concurrency. GET with wrk cycling through every key. Debian's wrk
 * 4.1.0 cannot measure HEAD (its parser waits for the body a HEAD response announces but never
 * sends: wg/wrk issue 198), so HEAD, and GET again for comparison, use ApacheBench (`ab -k`, with
 * `-i` for HEAD) on one key.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from './dataset.ts';
import { run } from './exec.ts';
import type { Lookup } from './results.ts';
import { medianBy } from './median.ts';

export interface LookupTarget {
  system: string;
  /** Base URL of the binary cache (scheme, host, port and path prefix). */
  url: string;
}

export interface LoadSettings {
  threads: number;
  connections: number;
  seconds: number;
  /** Each measurement is repeated this many times; the median is reported. */
  rounds: number;
}

export async function measureLookups(
  ds: Dataset,
  targets: LookupTarget[],
  load: LoadSettings,
  work: string,
  log: (line: string) => void,
): Promise<Lookup[]> {
  const keys = ds.series.flatMap((s) => s.nars.map((n) => n.hashPart));
  // A lookup that fails is not a lookup: every server must answer 200 before anything is timed.
  for (const target of targets) {
    for (const method of ['GET', 'HEAD']) {
      const probe = await fetch(`${target.url}/${keys[0]}.narinfo`, { method });
      if (probe.status !== 200) throw new Error(`${method} ${target.url}/${keys[0]}.narinfo answered ${probe.status}`);
      await probe.arrayBuffer();
    }
  }
  const scripts = new Map<LookupTarget, string>();
  for (const target of targets) {
    const prefix = `${new URL(target.url).pathname.replace(/\/$/, '')}/`;
    const script = join(work, `wrk-GET-${target.system.replace(/\W+/g, '-')}.lua`);
    await writeFile(script, wrkScript('GET', prefix, keys));
    scripts.set(target, script);
  }
  // Rounds alternate between the servers, and each figure is the median of its rounds, so that a
  // burst of other load on the machine cannot decide a ratio on its own.
  const runs = new Map<string, { system: string; method: 'GET' | 'HEAD'; tool: string; counts: Counts[] }>();
  const record = (system: string, method: 'GET' | 'HEAD', tool: string, counts: Counts): void => {
    const key = `${system}|${method}|${tool}`;
    if (!runs.has(key)) runs.set(key, { system, method, tool, counts: [] });
    runs.get(key)!.counts.push(counts);
  };
  for (let round = 1; round <= load.rounds; round++) {
    log(`lookups: round ${round} of ${load.rounds} (wrk GET, ab HEAD, ab GET against each server)`);
    for (const target of targets) {
      const url = new URL(target.url);
      const { stdout } = await run('wrk', [
        '-t',
        String(load.threads),
        '-c',
        String(load.connections),
        '-d',
        `${load.seconds}s`,
        '-s',
        scripts.get(target)!,
        `${url.protocol}//${url.host}`,
      ]);
      record(target.system, 'GET', `wrk, all ${keys.length} keys`, parseWrk(stdout));
    }
    for (const method of ['HEAD', 'GET'] as const) {
      for (const target of targets) {
        const args = [
          '-k',
          ...(method === 'HEAD' ? ['-i'] : []),
          '-c',
          String(load.connections),
          '-t',
          String(load.seconds),
          '-n',
          '100000000',
          `${target.url}/${keys[0]}.narinfo`,
        ];
        record(target.system, method, 'ab -k, one key', parseAb((await run('ab', args)).stdout));
      }
    }
  }
  const out: Lookup[] = [];
  for (const { system, method, tool, counts } of runs.values()) {
    const median = medianBy(counts, (c) => c.requestsPerSecond);
    out.push({
      system,
      method,
      tool,
      requestsPerSecond: median.requestsPerSecond,
      requests: counts.reduce((sum, c) => sum + c.requests, 0),
      errors: counts.reduce((sum, c) => sum + c.errors, 0),
      latencyAvg: median.latencyAvg,
    });
  }
  return out;
}

function wrkScript(method: string, prefix: string, keys: string[]): string {
  return `local keys = { ${keys.map((k) => `"${k}"`).join(', ')} }
local n = #keys
local i = 0
request = function()
  i = i + 1
  return wrk.format("${method}", "${prefix}" .. keys[(i % n) + 1] .. ".narinfo")
end
`;
}

type Counts = Omit<Lookup, 'system' | 'method' | 'tool'>;

export function parseWrk(output: string): Counts {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  const total = /^\s*(\d+) requests in/m.exec(output);
  const latency = /^\s*Latency\s+(\S+)/m.exec(output);
  if (!rps || !total) throw new Error(`cannot read wrk's output:\n${output}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket ? socket.slice(1).reduce((sum, v) => sum + Number(v), 0) : 0;
  return {
    requestsPerSecond: Number(rps[1]),
    requests: Number(total[1]),
    errors: (non2xx ? Number(non2xx[1]) : 0) + socketErrors,
    latencyAvg: latency ? latency[1] : '?',
  };
}

export function parseAb(output: string): Counts {
  const rps = /^Requests per second:\s+([\d.]+)/m.exec(output);
  const total = /^Complete requests:\s+(\d+)/m.exec(output);
  const failed = /^Failed requests:\s+(\d+)/m.exec(output);
  const non2xx = /^Non-2xx responses:\s+(\d+)/m.exec(output);
  const latency = /^Time per request:\s+([\d.]+) \[ms\] \(mean\)$/m.exec(output);
  if (!rps || !total) throw new Error(`cannot read ab's output:\n${output}`);
  return {
    requestsPerSecond: Number(rps[1]),
    requests: Number(total[1]),
    errors: (failed ? Number(failed[1]) : 0) + (non2xx ? Number(non2xx[1]) : 0),
    latencyAvg: latency ? `${latency[1]}ms` : '?',
  };
}
