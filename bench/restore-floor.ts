/**
 * The floor under an upgrade's time: how long stock Nix takes to restore release k+1 into a store
 * holding release k from a local binary cache of uncompressed `.nar` files (`nix copy --from
 * file://...?compression=none`: no network, no decompression), against the same copy from nginx
 * serving the static zstd cache at 100 Mbit/s (fetchUpgrade of measure-upgrades.ts), in the same
 * rounds. What the substituter can reach at best is about the floor, since it hands Nix the NAR
 * uncompressed too.
 *
 *   node bench/restore-floor.ts [--series node] [--upgrades 4] [--rounds 1] [--work DIR]
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { SeriesData } from './dataset.ts';
import { nixEnv } from './exec.ts';
import { fetchUpgrade } from './measure-upgrades.ts';
import { releaseSeriesInStore } from './series-in-store.ts';
import { startNginx } from './systems/nginx.ts';
import { nixCopyFrom, nixCopyTo } from './systems/static-cache.ts';

const { values } = parseArgs({
  options: {
    series: { type: 'string', default: 'node' },
    upgrades: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '1' },
    work: { type: 'string' },
  },
});
const wanted = values.series.split(',');
const work = values.work ?? join(tmpdir(), 'narwhal-bench-restore-floor');
const log = (line: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

const series = await releaseSeriesInStore(wanted);
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
const first = (s: SeriesData): number => Math.max(0, s.steps.length - 1 - Number(values.upgrades));
const all = series.flatMap((s) => s.stepPaths.slice(first(s)).flat());
const bytes = series.reduce((a, s) => a + s.narBytes, 0);
const env = nixEnv(join(work, 'client'));
const plain = `file://${join(work, 'plain')}?compression=none`;
await nixCopyTo(plain, all, env, bytes);
await nixCopyTo(`file://${join(work, 'static', 'zstd')}?compression=zstd`, all, env, bytes);
const nginx = await startNginx(join(work, 'static'), join(work, 'nginx'));
const rows: { upgrade: string; floor: number; nginx: number }[] = [];
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const s of series) {
      for (let k = first(s); k + 1 < s.steps.length; k++) {
        const upgrade = `${s.id} ${s.steps[k]} -> ${s.steps[k + 1]}`;
        const machine = join(work, 'machine');
        await rm(machine, { recursive: true, force: true });
        const narBytes = s.narBytes;
        await nixCopyFrom(plain, join(machine, 'root'), s.stepPaths[k], nixEnv(join(machine, 'home')), narBytes);
        const floor = await nixCopyFrom(
          plain,
          join(machine, 'root'),
          s.stepPaths[k + 1],
          nixEnv(join(machine, 'home2')),
          narBytes,
        );
        await rm(machine, { recursive: true, force: true });
        const [viaNginx] = await fetchUpgrade(s, k, '100mbit', { nginxZstd: `${nginx.url}/zstd`, narwhal: '' }, work, [
          'nginx-zstd',
        ]);
        log(
          `${upgrade} (round ${round + 1}): floor ${floor.toFixed(2)} s, nginx 100 Mbit/s ${viaNginx.seconds.toFixed(2)} s`,
        );
        rows.push({ upgrade, floor, nginx: viaNginx.seconds });
      }
    }
  }
} finally {
  await nginx.stop();
}
await rm(work, { recursive: true, force: true });

console.log('| upgrade | floor (file://, uncompressed) | nginx, 100 Mbit/s | floor vs nginx |');
console.log('| --- | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.upgrade} | ${r.floor.toFixed(2)} s | ${r.nginx.toFixed(2)} s | ${(r.floor / r.nginx).toFixed(2)}x |`,
  );
}
const floor = rows.reduce((a, r) => a + r.floor, 0);
const viaNginx = rows.reduce((a, r) => a + r.nginx, 0);
console.log(`| **sum** | ${floor.toFixed(2)} s | ${viaNginx.toFixed(2)} s | ${(floor / viaNginx).toFixed(2)}x |`);
