/**
 * Bytes `narwhal push` sends per release upgrade against `nix copy --to ?compression=zstd`, each
 * release pushed into a Narwhal holding the ones before it (pushUpgrades of measure-upgrades.ts,
 * the push half of report section 7), on the full dataset's release series as this machine's
 * store already holds them (a bench run added them), without building the rest of the dataset.
 *
 *   node bench/push-deltas.ts [--series node,swc,typescript] [--work DIR] [--whole]
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { pushUpgrades, wholePush } from './measure-upgrades.ts';
import { releaseSeriesInStore } from './series-in-store.ts';

const { values } = parseArgs({
  options: {
    series: { type: 'string', default: 'node,swc,typescript' },
    work: { type: 'string' },
    /** Also time the whole of the series pushed into an empty Narwhal, `narwhal push` against `nix copy --to`. */
    whole: { type: 'boolean', default: false },
  },
});
const wanted = values.series.split(',');
const work = values.work ?? join(tmpdir(), 'narwhal-bench-push-deltas');
const log = (line: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

const series = await releaseSeriesInStore(wanted);
await rm(work, { recursive: true, force: true });
const figures = await pushUpgrades(
  { series, largest: series[0].nars[0], totalNarBytes: 0, totalPaths: 0 },
  join(work, 'push'),
  log,
);
if (values.whole) {
  const { pushSeconds, copySeconds } = await wholePush(
    { series, largest: series[0].nars[0], totalNarBytes: 0, totalPaths: 0 },
    join(work, 'whole'),
    log,
  );
  console.log(
    `whole series into an empty Narwhal: narwhal push ${pushSeconds.toFixed(1)} s, nix copy --to zstd ${copySeconds.toFixed(1)} s (${(pushSeconds / copySeconds).toFixed(2)}x)`,
  );
}
await rm(work, { recursive: true, force: true });

const sum = (id: string | undefined, system: string) =>
  figures.filter((f) => f.system === system && (id === undefined || f.series === id)).reduce((a, f) => a + f.bytes, 0);
console.log('| series | upgrades | `nix copy --to` zstd | `narwhal push` | ratio |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const s of [...series.map((s) => s.id), undefined]) {
  const upgrades = figures.filter((f) => f.system === 'narwhal-push' && (s === undefined || f.series === s)).length;
  const copy = sum(s, 'nix-copy');
  const push = sum(s, 'narwhal-push');
  console.log(
    `| ${s ?? 'all'} | ${upgrades} | ${(copy / 1e6).toFixed(2)} MB | ${(push / 1e6).toFixed(2)} MB | ${(push / copy).toFixed(3)}x |`,
  );
}
for (const f of figures) log(`${f.series} ${f.to} ${f.system}: ${f.bytes} B, ${f.seconds.toFixed(1)} s`);
