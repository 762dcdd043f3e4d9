/**
 * Time of release upgrades through `narwhal substituter` against nginx serving the static zstd
 * cache (the fetch half of report section 7, fetchUpgrade of measure-upgrades.ts), at 100 Mbit/s
 * and on loopback, on the full dataset's release series as this machine's store holds them (a
 * bench run added them). With `--baseline DIR` (a checkout, e.g. `git archive main | tar -x -C DIR`
 * with node_modules linked), that checkout's substituter runs too, in the same rounds, against that
 * checkout's server on the same data.
 *
 *   node bench/substituter-speed.ts [--series node] [--upgrades 3] [--rounds 1] [--baseline DIR] [--work DIR]
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { SeriesData } from './dataset.ts';
import { nixEnv } from './exec.ts';
import { type FetchSystem, fetchUpgrade } from './measure-upgrades.ts';
import { releaseSeriesInStore } from './series-in-store.ts';
import { pushClientConfig, startNarwhal } from './systems/narwhal.ts';
import { startNginx } from './systems/nginx.ts';
import { nixCopyTo } from './systems/static-cache.ts';

const { values } = parseArgs({
  options: {
    series: { type: 'string', default: 'node' },
    /** The last N upgrades of each series. */
    upgrades: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    baseline: { type: 'string' },
    links: { type: 'string', default: '100mbit,loopback' },
    work: { type: 'string' },
  },
});
const wanted = values.series.split(',');
const work = values.work ?? join(tmpdir(), 'narwhal-bench-substituter-speed');
const log = (line: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

const series = await releaseSeriesInStore(wanted);
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });

log('a static zstd cache and a Narwhal holding every release');
const env = nixEnv(join(work, 'client'));
const first = (s: SeriesData): number => Math.max(0, s.steps.length - 1 - Number(values.upgrades));
const all = series.flatMap((s) => s.stepPaths.slice(first(s)).flat());
const bytes = series.reduce((a, s) => a + s.narBytes, 0);
await nixCopyTo(`file://${join(work, 'static', 'zstd')}?compression=zstd`, all, env, bytes);
const nginx = await startNginx(join(work, 'static'), join(work, 'nginx'));
const server = await startNarwhal(join(work, 'narwhal'));
const systems: FetchSystem[] = ['nginx-zstd', 'substituter'];
let baseline: Awaited<ReturnType<typeof startNarwhal>> | undefined;
const rows: Awaited<ReturnType<typeof fetchUpgrade>> = [];
try {
  const pushEnv = nixEnv(join(work, 'pusher'), await pushClientConfig(server, join(work, 'pusher')));
  await nixCopyTo(`${server.cacheUrl}?compression=zstd`, all, pushEnv, bytes);
  if (values.baseline) {
    const bin = join(values.baseline, 'bin/narwhal.js');
    baseline = await startNarwhal(join(work, 'narwhal'), [], bin);
    systems.push({ id: 'baseline', substituterBin: bin, narwhal: baseline.cacheUrl });
  }
  const sources = { nginxZstd: `${nginx.url}/zstd`, narwhal: server.cacheUrl };
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const link of values.links.split(',') as ('100mbit' | 'loopback')[]) {
      for (const s of series) {
        for (let k = first(s); k + 1 < s.steps.length; k++) {
          log(`${s.id} ${s.steps[k]} -> ${s.steps[k + 1]} (${link}, round ${round + 1})`);
          const figures = await fetchUpgrade(s, k, link, sources, join(work, 'upgrades'), systems);
          for (const f of figures) {
            log(
              `  ${f.system}: ${f.seconds.toFixed(2)} s, ${(f.bytes / 1e6).toFixed(2)} MB ${JSON.stringify(f.stats ?? {})}`,
            );
          }
          rows.push(...figures);
          log(`  this branch's server, answers so far: ${await chunkAnswers(server.cacheUrl)}`);
        }
      }
    }
  }
} finally {
  await baseline?.stop();
  await server.stop();
  await nginx.stop();
}
await rm(work, { recursive: true, force: true });

const total = (system: string, link: string, pick: (f: (typeof rows)[number]) => number) =>
  rows.filter((f) => f.system === system && f.link === link).reduce((a, f) => a + pick(f), 0);
console.log('| link | system | time | vs nginx | bytes | vs nginx |');
console.log('| --- | --- | ---: | ---: | ---: | ---: |');
for (const link of values.links.split(',')) {
  const seconds = total('nginx-zstd', link, (f) => f.seconds);
  const sent = total('nginx-zstd', link, (f) => f.bytes);
  for (const system of systems.map((s) => (typeof s === 'string' ? s : s.id))) {
    const t = total(system, link, (f) => f.seconds);
    const b = total(system, link, (f) => f.bytes);
    console.log(
      `| ${link} | ${system} | ${t.toFixed(2)} s | ${(t / seconds).toFixed(2)}x | ${(b / 1e6).toFixed(2)} MB | ${(b / sent).toFixed(2)}x |`,
    );
  }
}

/** The server's chunk-frames answers by kind (narwhal_chunk_answers_total), to see whether deltas were ready. */
async function chunkAnswers(cacheUrl: string): Promise<string> {
  const text = await fetch(`${new URL(cacheUrl).origin}/metrics`)
    .then((r) => r.text())
    .catch(() => '');
  const kinds = [...text.matchAll(/^narwhal_chunk_answers_total\{kind="([^"]+)"\} (\d+)/gm)];
  return kinds.map((m) => `${m[1]} ${m[2]}`).join(', ') || 'none';
}
