/**
 * The delta pass on a real store, as the bench builds it: each series of the study's dataset is
 * pushed with `nix copy --to` into a fresh `narwhal serve` and recompressed at level 19 (today's
 * Narwhal), the data dir kept as a snapshot; then `narwhal recompress --deltas` runs on a copy of
 * it, and the store is weighed before and after.
 *
 *   node bench/delta-study/push-pass.ts push --series typescript,rebuild [--mode full] [--work DIR]
 *   node bench/delta-study/push-pass.ts pass --series typescript,rebuild [--label NAME] [--from base|pushed]
 *
 * `pass` may be run again after a change to the code: each run starts from the same snapshot.
 */
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { diskUsage } from '../disk-usage.ts';
import { nixEnv, run } from '../exec.ts';
import type { ModeName } from '../modes.ts';
import { REPO } from '../sources.ts';
import { narwhalStats, pushClientConfig, recompress, startNarwhal } from '../systems/narwhal.ts';
import { nixCopySeriesTo } from '../systems/static-cache.ts';
import { studyDataset, studyWorkDir } from './dataset.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    series: { type: 'string', default: 'typescript,rebuild' },
    mode: { type: 'string', default: 'full' },
    work: { type: 'string' },
    label: { type: 'string', default: 'pass' },
    /** base: recompressed at level 19 without deltas; pushed: as pushed (the bench's order, deltas and level 19 in one run). */
    from: { type: 'string', default: 'base' },
    'pushed-only': { type: 'boolean', default: false },
  },
});
const mode = values.mode as ModeName;
const work = values.work ?? join(studyWorkDir(mode), 'push-pass');
const wanted = values.series.split(',');
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const mb = (b: number): string => (b / 1e6).toFixed(2);

async function weigh(dataDir: string): Promise<string> {
  const stats = await narwhalStats(dataDir);
  const du = await diskUsage(dataDir);
  return `${mb(du.apparent)} MB stored (du ${mb(du.allocated)} MB), chunks ${stats.chunks}, chunk bytes ${mb(stats.storedBytes)} MB`;
}

async function push(): Promise<void> {
  const ds = await studyDataset(mode, log);
  for (const s of ds.series.filter((x) => wanted.includes(x.id))) {
    const dataDir = join(work, s.id, values['pushed-only'] ? 'pushing' : 'base');
    const pushed = join(work, s.id, 'pushed');
    if (!values['pushed-only']) await rm(join(work, s.id), { recursive: true, force: true });
    await rm(pushed, { recursive: true, force: true });
    if (values['pushed-only']) await rm(dataDir, { recursive: true, force: true });
    const server = await startNarwhal(dataDir);
    try {
      const home = join(work, s.id, 'client');
      const env = nixEnv(home, await pushClientConfig(server, home));
      const copy = await nixCopySeriesTo(`${server.cacheUrl}?compression=zstd`, s, env);
      await server.stop();
      await cp(dataDir, pushed, { recursive: true });
      if (values['pushed-only']) continue;
      const rec = await recompress(dataDir);
      log(`${s.id}: pushed ${mb(s.narBytes)} MB of NAR in ${copy.toFixed(1)} s, recompressed in ${rec.toFixed(1)} s`);
    } finally {
      await server.stop();
    }
    log(`${s.id}: today's Narwhal: ${await weigh(dataDir)}`);
  }
}

async function pass(): Promise<void> {
  for (const id of wanted) {
    const base = join(work, id, values.from);
    const dataDir = join(work, id, values.label);
    await rm(dataDir, { recursive: true, force: true });
    await cp(base, dataDir, { recursive: true });
    const before = await weigh(dataDir);
    const t0 = performance.now();
    const { stdout } = await run(join(REPO, 'node_modules/.bin/narwhal'), [
      'recompress',
      '--deltas',
      '--data-dir',
      dataDir,
      '--json',
    ]);
    const seconds = (performance.now() - t0) / 1000;
    const report = JSON.parse(stdout) as Record<string, unknown>;
    log(`${id} [${values.label}]: before: ${before}`);
    log(`${id} [${values.label}]: after:  ${await weigh(dataDir)}`);
    log(`${id} [${values.label}]: pass ${seconds.toFixed(1)} s, report ${JSON.stringify(report)}`);
  }
}

if (positionals[0] === 'push') await push();
else if (positionals[0] === 'pass') await pass();
else throw new Error('usage: push-pass.ts push|pass [--series a,b] [--mode full|quick] [--label NAME]');
