/**
 * The push report's "whole dataset into an empty cache" row alone (section 7's wholePush: `nix copy
 * --to` Narwhal ?compression=zstd against `narwhal push`), each series after the other into a fresh
 * server as it does, repeated in rounds. With `--baseline DIR` (another checkout, e.g.
 * `git archive main | tar -x -C DIR` with node_modules copied) its server and `narwhal push` are
 * timed too, in the same rounds.
 *
 *   node bench/push-whole.ts [--mode quick|full] [--rounds 3] [--baseline DIR] [--work DIR]
 */
import { rm } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildDataset } from './dataset.ts';
import { nixEnv } from './exec.ts';
import { medianBy } from './median.ts';
import { MODES, type ModeName } from './modes.ts';
import { NARWHAL_BIN, narwhalPush, pushClientConfig, startNarwhal } from './systems/narwhal.ts';
import { nixCopyTo } from './systems/static-cache.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'quick' },
    rounds: { type: 'string', default: '3' },
    baseline: { type: 'string' },
    work: { type: 'string' },
  },
});
const work = values.work ?? join(tmpdir(), 'narwhal-bench-push-whole');
const log = (line: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const load = (): string => loadavg()[0].toFixed(1);

await rm(work, { recursive: true, force: true });
const ds = await buildDataset(
  MODES[values.mode as ModeName],
  join(work, 'dataset'),
  nixEnv(join(work, 'dataset-client')),
  log,
);
log(`dataset: ${ds.totalPaths} paths, ${(ds.totalNarBytes / 1e6).toFixed(0)} MB of NAR`);

const systems: { id: string; push: (round: string) => Promise<number> }[] = [
  {
    id: 'nix copy --to zstd',
    push: async (dir) => {
      const server = await startNarwhal(join(dir, 'server'));
      try {
        const env = nixEnv(join(dir, 'client'), await pushClientConfig(server, join(dir, 'client')));
        let seconds = 0;
        for (const s of ds.series)
          seconds += await nixCopyTo(`${server.cacheUrl}?compression=zstd`, s.paths, env, s.narBytes);
        return seconds;
      } finally {
        await server.stop();
      }
    },
  },
];
const narwhal = (id: string, bin: string) => ({
  id,
  push: async (dir: string) => {
    const server = await startNarwhal(join(dir, 'server'), [], bin);
    try {
      const env = nixEnv(join(dir, 'client'));
      let seconds = 0;
      for (const s of ds.series) {
        const took = (await narwhalPush(server.cacheUrl, server.token, s.paths, env, bin)).seconds;
        log(`${id}: ${s.id} ${took.toFixed(2)} s`);
        seconds += took;
      }
      return seconds;
    } finally {
      await server.stop();
    }
  },
});
if (values.baseline) systems.push(narwhal('baseline narwhal push', join(resolve(values.baseline), 'bin/narwhal.js')));
systems.push(narwhal('narwhal push', NARWHAL_BIN));

const times = new Map<string, number[]>(systems.map((s) => [s.id, []]));
for (let round = 0; round < Number(values.rounds); round++) {
  for (const system of systems) {
    const dir = join(work, `round-${round}`, system.id.replaceAll(' ', '-'));
    const before = load();
    const seconds = await system.push(dir);
    log(`round ${round + 1}: ${system.id} ${seconds.toFixed(2)} s (load ${before} / ${load()})`);
    times.get(system.id)!.push(seconds);
    await rm(dir, { recursive: true, force: true });
  }
}
await rm(work, { recursive: true, force: true });

const copy = medianBy(times.get(systems[0].id)!, (t) => t);
console.log(`| system | rounds (s) | median | vs nix copy --to |`);
console.log('| --- | --- | ---: | ---: |');
for (const [id, all] of times) {
  const m = medianBy(all, (t) => t);
  console.log(`| ${id} | ${all.map((t) => t.toFixed(2)).join(', ')} | ${m.toFixed(2)} s | ${(m / copy).toFixed(2)}x |`);
}
