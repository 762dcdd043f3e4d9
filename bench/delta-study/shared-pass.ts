/**
 * The bench's order on one shared store (measure-push.ts): each series pushed with `nix copy --to`,
 * recompressed and weighed, then the delta pass and weighed again; a series is charged with what the
 * store grew by since the previous series' pass.
 *
 *   node bench/delta-study/shared-pass.ts [--mode quick|full] [--series a,b] [--work DIR]
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { diskUsage } from '../disk-usage.ts';
import { nixEnv } from '../exec.ts';
import type { ModeName } from '../modes.ts';
import { deltaPass, pushClientConfig, recompress, startNarwhal } from '../systems/narwhal.ts';
import { nixCopyTo } from '../systems/static-cache.ts';
import { studyDataset, studyWorkDir } from './dataset.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'quick' },
    series: { type: 'string' },
    work: { type: 'string' },
  },
});
const mode = values.mode as ModeName;
const work = values.work ?? join(studyWorkDir(mode), 'shared-pass');
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const mb = (b: number): string => (b / 1e6).toFixed(2);

const ds = await studyDataset(mode, log);
const wanted = values.series?.split(',');
await rm(work, { recursive: true, force: true });
const dataDir = join(work, 'data');
let server = await startNarwhal(dataDir);
const home = join(work, 'client');
const env = nixEnv(home, await pushClientConfig(server, home));
let charged = 0;
for (const s of ds.series.filter((x) => !wanted || wanted.includes(x.id))) {
  await nixCopyTo(`${server.cacheUrl}?compression=zstd`, s.paths, env, s.narBytes);
  await server.stop();
  await recompress(dataDir);
  const plain = (await diskUsage(dataDir)).apparent;
  const pass = await deltaPass(dataDir, join(work, 'pass.time'));
  const withDeltas = (await diskUsage(dataDir)).apparent;
  log(
    `${s.id}: without deltas ${mb(plain - charged)} MB, with ${mb(withDeltas - charged)} MB ` +
      `(${((withDeltas - charged) / (plain - charged)).toFixed(2)}x), ${pass.report.deltas} deltas`,
  );
  charged = withDeltas;
  server = await startNarwhal(dataDir);
}
await server.stop();
