/**
 * Figure 4 (lookups): narinfo GET and HEAD requests per second with wrk, Narwhal against nginx
 * serving the static cache, the same keys in the same order at the same concurrency.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from './dataset.ts';
import { run } from './exec.ts';
import type { Lookup } from './results.ts';

export interface LookupTarget {
  system: string;
  /** Base URL of the binary cache (scheme, host, port and path prefix). */
  url: string;
}

export interface WrkSettings {
  threads: number;
  connections: number;
  seconds: number;
}

export async function measureLookups(ds: Dataset, targets: LookupTarget[], wrk: WrkSettings, work: string, log: (line: string) => void): Promise<Lookup[]> {
  const keys = ds.series.flatMap((s) => s.nars.map((n) => n.hashPart));
  const out: Lookup[] = [];
  for (const method of ['GET', 'HEAD'] as const) {
    for (const target of targets) {
      const url = new URL(target.url);
      const prefix = `${url.pathname.replace(/\/$/, '')}/`;
      // A lookup that fails is not a lookup: check one key answers 200 before timing.
      const probe = await fetch(`${target.url}/${keys[0]}.narinfo`, { method });
      if (probe.status !== 200) throw new Error(`${method} ${target.url}/${keys[0]}.narinfo answered ${probe.status}`);
      await probe.arrayBuffer();
      const script = join(work, `wrk-${method}-${target.system.replace(/\W+/g, '-')}.lua`);
      await writeFile(script, wrkScript(method, prefix, keys));
      log(`lookups: wrk ${method} narinfo against ${target.system}`);
      const { stdout } = await run('wrk', ['-t', String(wrk.threads), '-c', String(wrk.connections), '-d', `${wrk.seconds}s`, '-s', script, `${url.protocol}//${url.host}`]);
      out.push({ system: target.system, method, ...parseWrk(stdout) });
    }
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

export function parseWrk(output: string): Omit<Lookup, 'system' | 'method'> {
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
